/* SPDX-License-Identifier: MIT */
/*
 * Included first (-include) in every file built against the DDK headers, the
 * driver's own sources too. On x64, wdm.h's KeGetCurrentIrql, KeRaiseIrql and
 * KeLowerIrql are inline moves to and from CR8, which user mode may not do.
 * mingw's intrin-impl.h skips an intrinsic whose __INTRINSIC_DEFINED_ macro is
 * set, so these two become ordinary calls into the model's IRQL (irql.c).
 */
#ifndef MK_FORCED_H
#define MK_FORCED_H

#define __INTRINSIC_DEFINED___readcr8
#define __INTRINSIC_DEFINED___writecr8
unsigned long long __readcr8(void);
void __writecr8(unsigned long long Value);

#endif /* MK_FORCED_H */
