"""The sandbox and its layers: rlimits and process groups, a process and thread limit per
evaluation (pids cgroups, RLIMIT_NPROC), bubblewrap + seccomp, slot uids reading a staged copy of
the problem, reaper, docker; which layers apply, and the refusal when one asked for cannot.

Imports nothing of evaluators/ outside isolation/, and never service/."""
