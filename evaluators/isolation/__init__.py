"""The sandbox and its layers: rlimits and process groups, bubblewrap + seccomp, slot uids, reaper, docker.

Imports nothing of evaluators/ outside isolation/, and never service/."""
