// Which process of a data-parallel training job this is, as its launcher says in the
// environment. No LibTorch: a plain reading of variables, tested on its own.
//
// Launchers and the variables read (the first that is set wins):
//   torchrun, i3lab's coordinator (which sets them for every job, 0 of 1 alone), any
//   torchrun-style launcher:
//     RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; torchrun's own agent serves the
//     rendezvous store when TORCHELASTIC_USE_AGENT_STORE is "True" (its default "static"
//     rendezvous), under the prefix /worker/attempt_TORCHELASTIC_RESTART_COUNT
//   Slurm, inside an srun step (SLURM_STEP_ID set; a batch script's own shell is not a step):
//     SLURM_PROCID, SLURM_STEP_NUM_TASKS (else SLURM_NTASKS), SLURM_LOCALID; the master is the
//     first host of SLURM_STEP_NODELIST (else SLURM_JOB_NODELIST) unless MASTER_ADDR is set; the
//     port is MASTER_PORT, else 20000 + (SLURM_JOB_ID × 16 + SLURM_STEP_ID) mod 20000, so
//     concurrent steps of one job and jobs sharing a node rarely collide
//   neither: one process (rank 0 of 1)
#pragma once

#include <functional>
#include <string>

namespace i3 {

struct World {
  int rank = 0, size = 1, local_rank = 0;
  std::string master_addr;  // where rank 0 serves the rendezvous store
  int master_port = 0;
  std::string launcher;  // "torchrun", "slurm", or "" for one process alone
  bool agent_store = false;  // torchrun's agent serves the store; rank 0 is a client too
  // Keeps one job's rendezvous keys apart from another's on a reused port: the coordinator's
  // job and attempt, the Slurm job and step, or torchrun's restart count.
  std::string store_prefix;

  bool distributed() const { return size > 1; }
};

// Reads the variables above through `get` (std::getenv by default; a function returning null
// for an unset variable). Throws std::invalid_argument naming the variable for a value that is
// not a number, a rank outside 0..size−1, or a multi-rank world without a master address.
World world_from_env(const std::function<const char*(const char*)>& get = {});

// The first host of a Slurm node list: "gpu[07-09,12],cpu1" → "gpu07", "n1,n2" → "n1".
// Throws std::invalid_argument for an empty or malformed list.
std::string first_slurm_host(const std::string& nodelist);

}  // namespace i3
