/* SPDX-License-Identifier: MIT */
#pragma once

/* classify.h (the classifier's ABI) has no includes of its own: give it the kernel types. */
#include <linux/types.h>

#include "classify.h"
