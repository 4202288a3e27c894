"""The guest kernel: tasks, processes, signals, exec, the event loop and the syscall table."""
