/* Offsets and sizes shared by switch.S and the C++ runtime. Plain #defines so the assembler can read them;
 * runtime_internal.h static_asserts each one against debug_abi.h and the C++ structs. */
#ifndef FIBERSCOPE_ASM_OFFSETS_H
#define FIBERSCOPE_ASM_OFFSETS_H

/* struct fiberscope_context */
#define CTX_PC 0
#define CTX_SP 8
#define CTX_RBP 16
#define CTX_RBX 24
#define CTX_R12 32
#define CTX_R13 40
#define CTX_R14 48
#define CTX_R15 56
#define CTX_SIZE 64

/* struct fiberscope_fiber */
#define FIBER_SEQ 0
#define FIBER_STACK_LO 64
#define FIBER_STACK_HI 72
#define FIBER_CONTEXT 88
#define FIBER_SYSCALL_PC 152
#define FIBER_SYSCALL_SP 160
#define FIBER_FOREIGN_DEPTH 180
#define FIBER_TRANSITION_TOP 184

/* struct fiberscope_transition */
#define TR_PREV 0
#define TR_KIND 8
#define TR_DEPTH 12
#define TR_FROM_SP 16
#define TR_FROM_PC 24
#define TR_FROM_FP 32
#define TR_TO_SP 40
#define TR_SAVED_PC 48
#define TR_SAVED_SP 56
#define TR_SIZE 64

/* fiber::detail::ForeignTarget: where a foreign call's system-stack frames go. */
#define FT_SYSTEM_SP 0

#endif
