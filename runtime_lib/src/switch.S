/* Stack switching for the fiberscope runtime (x86-64 System V).
 *
 * - fiberscope_switch / fiberscope_save_context: save the callee-saved set into a fiberscope_context (which for a
 *   fiber is its published debug record) so that pc/sp describe "just returned from this call".
 * - fiber::yield: the public entry of yield, which chooses how to return after a switch (ret or jmp).
 * - fiberscope_fiber_start: the bottom frame of every fiber stack; `.cfi_undefined rip` ends unwinding there.
 * - fiberscope_entersyscall / fiberscope_exitsyscall: capture the exact caller pc/sp (Go's getcallerpc/sp);
 *   entersyscall stores them (and the callee-saved registers) straight into the fiber's record.
 * - fiberscope_foreign_trampoline (asmcgocall) and fiber_callback (cgocallback): run code on the other stack and
 *   push a fiberscope_transition in their own frame, with CFI that leads an unwinder back across the switch.
 *   Both FDEs are marked as signal frames (CIE augmentation "S"): the caller's frame lives on another stack, at an
 *   address that may be below this one, and gdb stops at such a step ("previous frame inner to this frame")
 *   unless the frame in between is a signal frame. The return addresses they leave are never the last
 *   instruction of a function, so the exact-pc lookup that "S" implies for the caller still lands in it.
 */
#include "asm_offsets.h"

        .text

/* void fiberscope_switch(fiberscope_context* save, const fiberscope_context* load) */
        .globl  fiberscope_switch
        .hidden fiberscope_switch
        .type   fiberscope_switch, @function
        .p2align 4
fiberscope_switch:
        .cfi_startproc
        movq    (%rsp), %rax
        leaq    8(%rsp), %rcx
        movq    %rax, CTX_PC(%rdi)
        movq    %rcx, CTX_SP(%rdi)
        movq    %rbp, CTX_RBP(%rdi)
        movq    %rbx, CTX_RBX(%rdi)
        movq    %r12, CTX_R12(%rdi)
        movq    %r13, CTX_R13(%rdi)
        movq    %r14, CTX_R14(%rdi)
        movq    %r15, CTX_R15(%rdi)
        movq    CTX_RBP(%rsi), %rbp
        movq    CTX_RBX(%rsi), %rbx
        movq    CTX_R12(%rsi), %r12
        movq    CTX_R13(%rsi), %r13
        movq    CTX_R14(%rsi), %r14
        movq    CTX_R15(%rsi), %r15
        movq    CTX_SP(%rsi), %rsp
        /* push + ret rather than an indirect jmp: this ret pairs with the call that entered the switch, so the
         * return-stack buffer stays balanced (a jmp leaves one stale entry, and every later ret mispredicts). */
        pushq   CTX_PC(%rsi)
        ret
        .cfi_endproc
        .size   fiberscope_switch, .-fiberscope_switch

/* void fiberscope_save_context(fiberscope_context* save): the save half of fiberscope_switch, then return. */
        .globl  fiberscope_save_context
        .hidden fiberscope_save_context
        .type   fiberscope_save_context, @function
        .p2align 4
fiberscope_save_context:
        .cfi_startproc
        movq    (%rsp), %rax
        leaq    8(%rsp), %rcx
        movq    %rax, CTX_PC(%rdi)
        movq    %rcx, CTX_SP(%rdi)
        movq    %rbp, CTX_RBP(%rdi)
        movq    %rbx, CTX_RBX(%rdi)
        movq    %r12, CTX_R12(%rdi)
        movq    %r13, CTX_R13(%rdi)
        movq    %r14, CTX_R14(%rdi)
        movq    %r15, CTX_R15(%rdi)
        ret
        .cfi_endproc
        .size   fiberscope_save_context, .-fiberscope_save_context

/* void fiber::yield(): calls fiberscope_yield_impl(our return address), which switches to another fiber or not, and
 * in whichever fiber resumes here returns the return address of the fiber::yield that switched to it (0 after any
 * other switch). That address is the top entry of the return-stack buffer now: the calls and returns since the
 * switch paired up. When it is ours, ret is predicted. When it differs (fibers yielding from different places) a
 * ret would mispredict on every yield, about 10 ns here, so we return with an indirect jmp instead, which the
 * branch target buffer learns; the RSB keeps one stale entry, but after a switch it holds the other fiber's
 * callers anyway. */
        .globl  _ZN5fiber5yieldEv
        .type   _ZN5fiber5yieldEv, @function
        .p2align 4
_ZN5fiber5yieldEv:
        .cfi_startproc
        movq    (%rsp), %rdi
        subq    $8, %rsp
        .cfi_def_cfa_offset 16
        call    fiberscope_yield_impl
        addq    $8, %rsp
        .cfi_def_cfa_offset 8
        cmpq    %rax, (%rsp)
        jne     1f
        ret
1:      popq    %rcx
        .cfi_def_cfa_offset 0
        .cfi_register rip, rcx
        jmpq    *%rcx
        .cfi_endproc
        .size   _ZN5fiber5yieldEv, .-_ZN5fiber5yieldEv

/* Entered by the first switch into a new fiber with r12 = callable storage, r13 = fiber_entry<F>.
 * The call below leaves a return address inside this function, whose rip rule is "undefined": the end of
 * the stack for every unwinder, one frame under the fiber's real start function. */
        .globl  fiberscope_fiber_start
        .hidden fiberscope_fiber_start
        .type   fiberscope_fiber_start, @function
        .p2align 4
fiberscope_fiber_start:
        .cfi_startproc
        .cfi_undefined rip
        xorl    %ebp, %ebp
        movq    %r12, %rdi
        callq   *%r13
        ud2
        .cfi_endproc
        .size   fiberscope_fiber_start, .-fiberscope_fiber_start

/* ForeignTarget* fiberscope_entersyscall(uint32_t mode)
 * Stores the caller's frame (pc = our return address, sp = our CFA, its callee-saved registers untouched so far)
 * straight into the calling fiber's record, found through t_current_record in one %fs-relative load, inside a
 * seqlock window opened here (x86 keeps the plain stores in order for a reader), then tail-calls
 * fiberscope_entersyscall_impl(mode, record, odd seq) for the rest. Not in a fiber: returns null. A caller sp
 * outside the fiber's stack aborts before anything is stored (Go's entersyscall_bad). */
        .globl  fiberscope_entersyscall
        .type   fiberscope_entersyscall, @function
        .p2align 4
fiberscope_entersyscall:
        .cfi_startproc
        movq    _ZN5fiber6detail16t_current_recordE@gottpoff(%rip), %rax
        movq    %fs:(%rax), %rax
        testq   %rax, %rax
        jz      2f
        leaq    8(%rsp), %rcx
        cmpq    FIBER_STACK_LO(%rax), %rcx
        jb      3f
        cmpq    FIBER_STACK_HI(%rax), %rcx
        jae     3f
        movq    FIBER_SEQ(%rax), %rdx
        addq    $1, %rdx
        movq    %rdx, FIBER_SEQ(%rax)
        movq    (%rsp), %r8
        movq    %r8, FIBER_CONTEXT+CTX_PC(%rax)
        movq    %rcx, FIBER_CONTEXT+CTX_SP(%rax)
        movq    %rbp, FIBER_CONTEXT+CTX_RBP(%rax)
        movq    %rbx, FIBER_CONTEXT+CTX_RBX(%rax)
        movq    %r12, FIBER_CONTEXT+CTX_R12(%rax)
        movq    %r13, FIBER_CONTEXT+CTX_R13(%rax)
        movq    %r14, FIBER_CONTEXT+CTX_R14(%rax)
        movq    %r15, FIBER_CONTEXT+CTX_R15(%rax)
        movq    %r8, FIBER_SYSCALL_PC(%rax)
        movq    %rcx, FIBER_SYSCALL_SP(%rax)
        movq    %rax, %rsi
        jmp     fiberscope_entersyscall_impl@PLT
2:      ret
3:      movq    %rcx, %rdi
        jmp     fiberscope_entersyscall_bad@PLT
        .cfi_endproc
        .size   fiberscope_entersyscall, .-fiberscope_entersyscall

/* void fiberscope_exitsyscall(uint32_t mode): tail-calls fiberscope_exitsyscall_impl(mode, caller_sp). */
        .globl  fiberscope_exitsyscall
        .type   fiberscope_exitsyscall, @function
        .p2align 4
fiberscope_exitsyscall:
        .cfi_startproc
        leaq    8(%rsp), %rsi
        jmp     fiberscope_exitsyscall_impl@PLT
        .cfi_endproc
        .size   fiberscope_exitsyscall, .-fiberscope_exitsyscall

/* long fiberscope_foreign_trampoline(long (*fn)(void*), void* arg, const ForeignTarget* target)
 * Runs fn(arg) on the worker's system stack at target->system_sp (or simply calls it when target is null). The
 * fiber-side stack pointer stays in rbx (callee-saved, so C code preserves it) and the CFA is defined on it: unwinding
 * from the C frames comes back here and then to the caller on the fiber stack. The FOREIGN_CALL transition lives at the
 * top of the system-side frame and is linked from the fiber record's transition_top under its seqlock (x86 keeps stores
 * in order, so the plain stores below are seen in order by a reader). With a target, the record's window is already
 * open (fiberscope_entersyscall in foreign_call mode left it so): the link closes it, and the unlink opens the one
 * fiberscope_exitsyscall closes, so each side of the call publishes in one window. */
        .globl  fiberscope_foreign_trampoline
        .hidden fiberscope_foreign_trampoline
        .type   fiberscope_foreign_trampoline, @function
        .p2align 4
fiberscope_foreign_trampoline:
        .cfi_startproc
        .cfi_signal_frame
        testq   %rdx, %rdx
        jz      1f
        /* Only rbx is saved: the frame keeps the fiber-side sp there, and nothing else callee-saved is touched, so
         * an unwinder finds the caller's rbp, r12... unchanged (the callee-saved rule for registers without one).
         * The system stack is aligned for the call whatever the fiber side's alignment. */
        pushq   %rbx
        .cfi_def_cfa_offset 16
        .cfi_offset rbx, -16
        movq    %rsp, %rbx
        .cfi_def_cfa_register rbx
        /* The caller's record, as entersyscall found it (in an executable the linker turns the GOT load into
         * an immediate). Read again after the call rather than kept in a saved register: the fiber cannot leave
         * this thread while its C frames are on this system stack (a callback that parks is locked here), so
         * t_current_record still names it. */
        movq    _ZN5fiber6detail16t_current_recordE@gottpoff(%rip), %rcx
        movq    %fs:(%rcx), %rcx
        movq    FT_SYSTEM_SP(%rdx), %rsp
        subq    $TR_SIZE, %rsp
        movq    FIBER_TRANSITION_TOP(%rcx), %rax
        movq    %rax, TR_PREV(%rsp)
        movl    $1, TR_KIND(%rsp)
        movl    FIBER_FOREIGN_DEPTH(%rcx), %eax
        addl    $1, %eax
        movl    %eax, TR_DEPTH(%rsp)
        movl    %eax, FIBER_FOREIGN_DEPTH(%rcx)
        leaq    16(%rbx), %rax
        movq    %rax, TR_FROM_SP(%rsp)
        movq    8(%rbx), %rax
        movq    %rax, TR_FROM_PC(%rsp)
        movq    %rbp, TR_FROM_FP(%rsp)
        movq    %rsp, TR_TO_SP(%rsp)
        /* saved_syscall_pc/sp are left as they are: a FOREIGN_CALL record does not define them (debug_abi.h). */
        movq    %rsp, FIBER_TRANSITION_TOP(%rcx)
        addq    $1, FIBER_SEQ(%rcx)           /* closes the window fiberscope_entersyscall opened */
        movq    %rdi, %rax
        movq    %rsi, %rdi
        callq   *%rax
        movq    _ZN5fiber6detail16t_current_recordE@gottpoff(%rip), %rcx
        movq    %fs:(%rcx), %rcx
        movq    TR_PREV(%rsp), %rsi
        movl    TR_DEPTH(%rsp), %edx
        subl    $1, %edx
        addq    $1, FIBER_SEQ(%rcx)           /* opens the window fiberscope_exitsyscall closes */
        movq    %rsi, FIBER_TRANSITION_TOP(%rcx)
        movl    %edx, FIBER_FOREIGN_DEPTH(%rcx)
        movq    %rbx, %rsp
        .cfi_def_cfa rsp, 16
        popq    %rbx
        .cfi_def_cfa_offset 8
        .cfi_restore rbx
        ret
1:      /* No target: not called from a fiber, so just call fn(arg) here. */
        movq    %rdi, %rax
        movq    %rsi, %rdi
        jmpq    *%rax
        .cfi_endproc
        .size   fiberscope_foreign_trampoline, .-fiberscope_foreign_trampoline

/* long fiber_callback(long (*fn)(void*), void* arg)  -- called by C code inside a foreign call.
 * fiberscope_callback_stack() returns where on the fiber stack the callback may run (below the innermost
 * transition's from_sp, minus a red zone). The system-side stack pointer stays in rbx and the CFA is defined on
 * it, so an unwinder goes from the callback's frames back to the C frames on the system stack. The CALLBACK
 * transition lives at the top of the fiber-side frame; fiberscope_callback_run fills and links it. */
        .globl  fiber_callback
        .type   fiber_callback, @function
        .p2align 4
fiber_callback:
        .cfi_startproc
        .cfi_signal_frame
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset rbp, -16
        pushq   %rbx
        .cfi_def_cfa_offset 24
        .cfi_offset rbx, -24
        pushq   %r12
        .cfi_def_cfa_offset 32
        .cfi_offset r12, -32
        pushq   %r13
        .cfi_def_cfa_offset 40
        .cfi_offset r13, -40
        subq    $8, %rsp
        .cfi_def_cfa_offset 48
        movq    %rdi, %r12
        movq    %rsi, %r13
        call    fiberscope_callback_stack@PLT
        movq    %rsp, %rbx
        .cfi_def_cfa_register rbx
        movq    %rax, %rsp
        subq    $TR_SIZE, %rsp
        movq    %rsp, %rdi
        movq    %r12, %rsi
        movq    %r13, %rdx
        leaq    48(%rbx), %rcx
        movq    40(%rbx), %r8
        movq    %rbp, %r9
        call    fiberscope_callback_run@PLT
        movq    %rbx, %rsp
        .cfi_def_cfa rsp, 48
        addq    $8, %rsp
        .cfi_def_cfa_offset 40
        popq    %r13
        .cfi_def_cfa_offset 32
        .cfi_restore r13
        popq    %r12
        .cfi_def_cfa_offset 24
        .cfi_restore r12
        popq    %rbx
        .cfi_def_cfa_offset 16
        .cfi_restore rbx
        popq    %rbp
        .cfi_def_cfa_offset 8
        .cfi_restore rbp
        ret
        .cfi_endproc
        .size   fiber_callback, .-fiber_callback

        .section .note.GNU-stack,"",@progbits
