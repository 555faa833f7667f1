#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Writes the seed corpus of the harnesses that read text or structured bytes (the frames of
# fuzz-xdp come from gen-frames.c). Run from the source tree after changing a seed:
#   tests/fuzz/make-corpus.py
# The files are committed; libFuzzer starts from them and writes its finds elsewhere.
import glob
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, 'corpus')

# Must follow the lists in fuzz-query.c and fuzz-filter-bus.c (a seed that drifts is still a
# valid input, only a less useful one).
QUERY_KEYS = ['limit', 'offset', 'sort', 'protocol', 'family', 'address', 'port', 'state',
              'type', 'link']
QUERY_WORDS = ['bytes', 'packets', 'last_seen', 'first_seen', 'rate', 'tcp', 'udp', 'icmp',
               'icmpv6', 'sctp', 'ipv4', 'ipv6', '192.0.2.0/24', '2001:db8::/32', '10.0.0.1', '::',
               '0.0.0.0/0', 'none', 'syn', 'established', 'fin', 'rst', 'ps0', '', '255',
               '1.2.3.4/33']
RULE_KEYS = ['rule_type', 'protocol', 'src_ip', 'dst_ip', 'src_port', 'dst_port', 'tcp_flags',
             'tcp_flags_mask', 'icmp_type', 'icmp_code', 'inner_src_ip', 'inner_dst_ip',
             'inner_protocol', 'inner_src_port', 'inner_dst_port', 'action', 'enabled', 'comment',
             'priority', 'timeout', 'force', 'id', 'created', 'expires', 'hits', 'bytes',
             'last_hit']
RULE_WORDS = ['basic', 'tcp', 'udp', 'icmp', 'icmpv6', 'any', '', 'drop', 'pass', 'count', '23',
              '8000-8999', '0-1023', '65535', '1-0', '192.0.2.0/24', '2001:db8::/32', '10.0.0.1',
              '::ffff:1.2.3.4', '0.0.0.0/0', '1.2.3.4/33', 'udplite', 'sctp', '255', '-1']
TYPES = 'ybnqiuxtdsogbs(a{v'


def write(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def string(s):
    b = s.encode()
    assert len(b) < 256
    return bytes([len(b)]) + b


def dict_seed(first, entries, keys, words):
    """The byte layout fuzz_build_dict() reads: count, then per entry a key and a variant."""
    out = bytes([first, len(entries)])
    for key, t, value in entries:
        if key in keys:
            out += bytes([(keys.index(key) << 2 | 1) & 0xff])
        else:
            out += bytes([0]) + string(key)
        out += bytes([TYPES.index(t)])
        if t in 'yb':
            out += bytes([value & 0xff])
        elif t in 'nq':
            out += struct.pack('>H', value & 0xffff)
        elif t in 'iu':
            out += struct.pack('>I', value & 0xffffffff)
        elif t in 'xt':
            out += struct.pack('>Q', value & 0xffffffffffffffff)
        elif t == 'd':
            out += struct.pack('>d', value)
        elif t == 's':
            if value in words:
                out += bytes([(words.index(value) << 1 | 1) & 0xff])
            else:
                out += bytes([0]) + string(value)
        elif t in 'og':
            out += string(value)
    return out


def config():
    write('fuzz-config', 'example', '''# packetscope.conf(5), the example of the man page
[Guard]
FlowTableSize=262144
IcmpTableSize=16384
IdleTimeoutSec=2min
ClosedTimeoutSec=10s
SweepPeriodSec=30s

[Filters]
ManagementAddresses=192.0.2.10 192.0.2.11 2001:db8:1::10
ManagementPorts=22 2222
''')
    write('fuzz-config', 'every-key', '''[Guard]
FlowTableSize=1024
IcmpTableSize=256
PollIntervalSec=500ms
IdleTimeoutSec=30d
ClosedTimeoutSec=1s
SweepPeriodSec=1d
MaxLinks=4096
[Filters]
ManagementAddresses=10.0.0.0/8 ::1 2001:db8::/32
ManagementAddresses=
ManagementPorts=
ManagementPorts=1 65535
''')
    write('fuzz-config', 'bad-value', '[Guard]\nFlowTableSize=512\n')
    write('fuzz-config', 'bad-section', '[Nope]\nKey=1\n')
    write('fuzz-config', 'comments', '; a comment\n# another\n\n  [Guard]  \n  MaxLinks = 8  \n')
    write('fuzz-config', 'span-units', '[Guard]\nPollIntervalSec=1h\nIdleTimeoutSec=1d 2h 3min 4s\n'
          'ClosedTimeoutSec=90\nSweepPeriodSec=1.5s\n')


def query():
    seeds = {
        'flows-top': (0, [('limit', 'u', 10), ('sort', 's', 'bytes'), ('protocol', 's', 'tcp')]),
        'flows-filter': (0, [('address', 's', '192.0.2.0/24'), ('port', 'q', 443),
                             ('state', 's', 'established'), ('family', 's', 'ipv4'),
                             ('link', 's', 'ps0')]),
        'flows-window': (0, [('offset', 'u', 99990), ('limit', 'u', 10000)]),
        'flows-rate': (0, [('sort', 's', 'rate'), ('protocol', 'y', 17)]),
        'icmp': (1, [('type', 'y', 8), ('sort', 's', 'rate'), ('address', 's', '2001:db8::/32')]),
        'bad-type': (0, [('limit', 's', 'ten'), ('port', 'd', 1.5)]),
        'unknown-key': (1, [('bogus', 'b', 1)]),
        'wide-ints': (0, [('limit', 't', 2 ** 64 - 1), ('port', 'x', -1), ('offset', 'i', -5)]),
    }
    for name, (kind, entries) in seeds.items():
        write('fuzz-query', name, dict_seed(kind, entries, QUERY_KEYS, QUERY_WORDS))


def guarder_rules():
    rules = []
    for p in sorted(glob.glob(os.path.join(HERE, '..', 'guarder', '*.json'))):
        with open(p) as f:
            rules.append((os.path.basename(p)[:-5], f.read()))
    return rules


def filter_json():
    rules = guarder_rules()
    for name, text in rules:
        mode = 1 if name.startswith('update') else 0
        write('fuzz-filter-json', name, bytes([mode]) + text.encode())
    # One document with every example: the compiler and the reference matcher side by side,
    # followed by tuple bytes.
    docs = [json.loads(t) for n, t in rules if not n.startswith('update')]
    write('fuzz-filter-json', 'all-guarder-rules',
          bytes([0]) + json.dumps(docs).encode() + b'\0' + bytes(range(256)))
    write('fuzz-filter-json', 'export', bytes([2]) + json.dumps([
        {'id': 4, 'rule_type': 'udp', 'protocol': 'udp', 'dst_port': '8000-8999',
         'src_ip': '2001:db8::/48', 'action': 'count', 'enabled': True, 'priority': -5,
         'timeout': 3600, 'created': 1700000000000000, 'expires': 1700003600000000,
         'hits': 3, 'bytes': 180, 'last_hit': 0},
        {'id': 5, 'rule_type': 'tcp', 'dst_port': 22, 'tcp_flags': 2, 'tcp_flags_mask': 18,
         'dst_ip': '198.51.100.0/24', 'action': 'pass', 'priority': 1000000},
        {'id': 6, 'rule_type': 'icmp', 'protocol': 'icmpv6', 'icmp_type': 1,
         'inner_protocol': 'tcp', 'inner_dst_port': '1-1023', 'inner_src_ip': '2001:db8::1'},
    ]).encode() + b'\0' + bytes(range(255, -1, -1)))
    write('fuzz-filter-json', 'update-fields', bytes([1]) + json.dumps(
        {'id': 7, 'dst_port': 'any', 'rule_type': 'udp', 'timeout': 60}).encode())


def filter_bus():
    seeds = {
        'add-tcp': (0, [('rule_type', 's', 'tcp'), ('dst_port', 'q', 23), ('action', 's', 'drop'),
                        ('comment', 's', 'Block Telnet')]),
        'add-range': (0, [('rule_type', 's', 'udp'), ('dst_port', 's', '8000-8999'),
                          ('src_ip', 's', '2001:db8::/32'), ('priority', 'i', 10),
                          ('timeout', 'u', 60)]),
        'add-icmp': (0, [('rule_type', 's', 'icmp'), ('protocol', 's', 'icmp'), ('icmp_type', 'y', 3),
                         ('inner_protocol', 's', 'udp')]),
        'update': (1, [('id', 'u', 0), ('enabled', 'b', 0), ('comment', 's', 'off')]),
        'nan': (0, [('dst_port', 'd', float('nan'))]),
        'wide': (0, [('dst_port', 't', 2 ** 64 - 1), ('priority', 'x', -2 ** 63)]),
        'containers': (0, [('comment', 'a', None), ('rule_type', '(', None), ('action', 'v', None)]),
        'read-only': (0, [('hits', 't', 5), ('created', 'x', 1)]),
    }
    for name, (first, entries) in seeds.items():
        fixed = []
        for k, t, v in entries:
            if t == 'a':
                fixed.append((k, 'a', None))
            elif t == '(':
                fixed.append((k, '(', None))
            elif t == 'v':
                fixed.append((k, 'v', None))
            else:
                fixed.append((k, t, v))
        out = dict_seed(first, [(k, t, v) for k, t, v in fixed if t not in 'a(v'],
                        RULE_KEYS, RULE_WORDS)
        # Containers: their type index and a few value bytes.
        extra = [(k, t) for k, t, v in fixed if t in 'a(v']
        if extra:
            out = bytearray(out)
            out[1] += len(extra)
            for k, t in extra:
                out += bytes([(RULE_KEYS.index(k) << 2 | 1) & 0xff, TYPES.index(t)]) + b'\x02ab\0\0\0\1'
            out = bytes(out)
        write('fuzz-filter-bus', name, out)


def state():
    links = {'version': 1, 'links': [{'name': 'eth0', 'mode': 'auto'},
                                     {'name': 'ps0', 'mode': 'native'},
                                     {'name': 'veth-lan', 'mode': 'generic'}]}
    write('fuzz-state', 'links', bytes([0]) + json.dumps(links, indent=2).encode())
    write('fuzz-state', 'links-empty', bytes([0]) + b'{"version": 1, "links": []}')
    write('fuzz-state', 'links-bad-mode', bytes([0]) + b'{"links": [{"name": "eth0", "mode": "fast"}]}')
    write('fuzz-state', 'links-cut', bytes([0]) + json.dumps(links).encode()[:40])
    docs = [json.loads(t) for n, t in guarder_rules() if not n.startswith('update')]
    filters = []
    for i, d in enumerate(docs):
        d = dict(d)
        d.update({'id': i, 'slot': i, 'created': 1700000000000000 + i})
        filters.append(d)
    write('fuzz-state', 'filters-guarder', bytes([1]) + json.dumps(
        {'version': 1, 'next_id': len(filters), 'filters': filters}).encode())
    write('fuzz-state', 'filters-timed', bytes([1]) + json.dumps(
        {'version': 1, 'next_id': 9, 'filters': [
            {'id': 3, 'slot': 17, 'rule_type': 'tcp', 'dst_port': 23, 'timeout': 3600,
             'created': 1700000000000000, 'expires': 4102444800000000},
            {'id': 8, 'slot': 2, 'rule_type': 'udp', 'dst_port': '0-1023', 'timeout': 60,
             'created': 1700000000000000, 'expires': 1700000060000000}]}).encode())
    write('fuzz-state', 'filters-slot-twice', bytes([1]) + json.dumps(
        {'version': 1, 'next_id': 2, 'filters': [
            {'id': 0, 'slot': 5, 'rule_type': 'tcp', 'dst_port': 22},
            {'id': 1, 'slot': 5, 'rule_type': 'tcp', 'dst_port': 23}]}).encode())
    write('fuzz-state', 'filters-empty', bytes([1]) + b'{"version": 1, "next_id": 0, "filters": []}')
    write('fuzz-state', 'filters-garbage', bytes([1]) + b'{"version": 1, "next_id": ')


config()
query()
filter_json()
filter_bus()
state()
