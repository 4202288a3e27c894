/* The stub's batch loop (assembled into BATCH_CODE in stub.py; `as` this file and compare
 * with tests/unit/test_stub.py). It starts at STUB_BATCH with r12 pointing at a table of
 * 64-byte entries { nr, a1, a2, a3, a4, a5, a6, ref1:8, ref5:8, pad:48 } ended by nr = -1.
 * Each entry's result replaces its nr. A nonzero ref adds the result of entry ref-1 to a1
 * (an address in a mapping made earlier in the table) or to a5 (an fd borrowed earlier):
 * that is what lets exec run all its calls in one go. The closing int3 stops the task. */
    .intel_syntax noprefix
    .text
batch:
    mov r13, r12
1:  mov rax, [r13]
    cmp rax, -1
    je 4f
    mov rdi, [r13+8]
    mov rsi, [r13+16]
    mov rdx, [r13+24]
    mov r10, [r13+32]
    mov r8,  [r13+40]
    mov r9,  [r13+48]
    movzx ecx, byte ptr [r13+56]
    test ecx, ecx
    jz 2f
    shl rcx, 6
    add rdi, [r12+rcx-64]
2:  movzx ecx, byte ptr [r13+57]
    test ecx, ecx
    jz 3f
    shl rcx, 6
    add r8, [r12+rcx-64]
3:  syscall
    mov [r13], rax
    add r13, 64
    jmp 1b
4:  int3
