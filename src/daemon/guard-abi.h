/* SPDX-License-Identifier: MIT */
#pragma once

/* guard.h has no includes of its own (the BPF side has no libc): give it the kernel types. */
#include <linux/types.h>

#include "guard.h"
