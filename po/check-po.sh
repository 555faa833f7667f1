#!/bin/sh
# SPDX-License-Identifier: MIT
# check-po.sh SRCDIR LANG: po/LANG.po translates every message the sources in po/POTFILES
# have now, with matching printf formats. Prints the missing and fuzzy ones otherwise.
set -eu
src=$1 lang=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
xgettext --from-code=UTF-8 --keyword=_ --keyword=N_ --keyword=C_:1c,2 --keyword=NC_:1c,2 \
        --keyword=g_dngettext:2,3 --add-comments --files-from=po/POTFILES -o "$tmp/now.pot"
msgmerge --quiet --no-fuzzy-matching -o "$tmp/$lang.po" "po/$lang.po" "$tmp/now.pot"
msgfmt --check -o /dev/null "$tmp/$lang.po"
stats=$(LC_ALL=C msgfmt --statistics -o /dev/null "$tmp/$lang.po" 2>&1)
echo "$lang: $stats"
case $stats in
*fuzzy* | *untranslated*)
        msgattrib --untranslated --only-fuzzy "$tmp/$lang.po" 2>/dev/null || true
        msgattrib --untranslated "$tmp/$lang.po"
        exit 1 ;;
esac
