"""What torchrun's agent does under its default static rendezvous, for data_parallel_test.

torchrun's agent itself serves the c10d TCPStore on MASTER_PORT and starts each worker with
torchrun's variables and TORCHELASTIC_USE_AGENT_STORE=True; the workers then only connect. (Debian
bookworm's own torchrun, torch 1.13 on Python 3.11, stops before starting any worker: its
redirect parsing fails on Python 3.11's enums. So the test plays the agent with the same store.)

usage: torchrun_agent.py PORT NPROCS COMMAND...   exits with the highest exit status of the ranks
"""
import datetime
import os
import subprocess
import sys

import torch.distributed as dist

port, nprocs, command = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
store = dist.TCPStore("127.0.0.1", port, nprocs, True, datetime.timedelta(seconds=60), wait_for_workers=False)
ranks = []
for rank in range(nprocs):
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(nprocs), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True", TORCHELASTIC_RESTART_COUNT="0")
    ranks.append(subprocess.Popen(command, env=env))
sys.exit(max(p.wait() for p in ranks))
