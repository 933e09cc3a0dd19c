#include "model/dist/data_parallel.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if __has_include(<torch/csrc/distributed/c10d/Backend.hpp>)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#endif
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "common/util/addresses.h"
#include "common/util/clock.h"
#include "common/util/json.h"
#include "common/util/sha256.h"

// Gloo's process group includes Gloo's own headers: Debian's libgloo-dev; pip's torch wheels
// may not ship them, and a CUDA build needs NCCL alone.
#if defined(USE_C10D_GLOO) && __has_include(<gloo/algorithm.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define I3LAB_WITH_GLOO 1
#endif

#ifdef I3LAB_WITH_NCCL
#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace i3 {
namespace {

using util::Clock;

// The collectives' owner: a ProcessGroup in LibTorch 1.x, a Backend from 2.0 on.
#if TORCH_VERSION_MAJOR >= 2
using Group = c10d::Backend;
#else
using Group = c10d::ProcessGroup;
#endif

std::chrono::milliseconds millis(double seconds) { return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)); }

// This machine's address on the route to `host`: the one the other ranks can reach it at (a
// connected UDP socket sends nothing; the kernel only picks the source address). A master
// named by a host name that resolves to loopback here (Debian's 127.0.1.1 entry for the
// machine's own name) is this machine, which others reach at an outward address.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
    throw std::invalid_argument("the master's address \"" + util::cut(host) + "\" (MASTER_ADDR, or the Slurm node list's first host) does not "
                                "resolve here: set MASTER_ADDR to an address every rank reaches");
  std::string out;
  for (addrinfo* a = found; a && out.empty(); a = a->ai_next) {
    const int fd = socket(a->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    char text[INET6_ADDRSTRLEN] = {};
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      const void* addr = local.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                                                     : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
      if (inet_ntop(local.ss_family, addr, text, sizeof text)) out = text;
    }
    close(fd);
  }
  freeaddrinfo(found);
  if (out.empty()) throw std::invalid_argument("no route from this machine to the master's address \"" + util::cut(host) + "\"");
  if (util::is_loopback(out) && !util::is_loopback(host) && host != "localhost") {
    const std::string outward = util::first_outward_address();
    if (!outward.empty()) return outward;
  }
  return out;
}

}  // namespace

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Group> group;
  torch::Device device = torch::kCPU;
  std::chrono::milliseconds timeout{0}, leader_timeout{0};
  std::string where;  // "rank R of N (master HOST:PORT)", for errors
  int64_t shared = 0, leader_phases = 0;  // share() and wait_for_leader() calls so far: a key each

  // Buckets over the optimizer's flat gradient buffers, in the order they are sent.
  struct Bucket {
    torch::Tensor grads;  // a contiguous slice of one group's gradient buffer
    int params = 0, pending = 0;
    c10::intrusive_ptr<c10d::Work> work;
    Clock::time_point launched;
    std::shared_ptr<std::atomic<int64_t>> done_ns;  // set by the work's completion callback
  };
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;  // per optimizer slot
  std::vector<torch::Tensor> grad_buffers;
  // The parameters' gradient accumulators (kept alive: autograd holds them weakly) and the
  // keys of the hooks on them, removed when this ends.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks;
  size_t next_to_send = 0;
  bool sending = false, overlap = true;
  double bucket_mb = 25, first_bucket_mb = 1;
  std::mutex mu;  // hooks run on autograd's threads
  CommStats stats;

  static std::string message(const std::exception& e) {
    std::string what = e.what();
    if (const size_t trace = what.find("\nException raised from"); trace != std::string::npos) what.resize(trace);
    return what;
  }

  [[noreturn]] void lost(const std::string& doing, const std::exception& e) {
    throw PeerLost(where + ": " + doing + " failed: " + message(e) +
                   " (another rank stopped, was killed or cannot be reached; a coordinator's job is retried from its "
                   "last checkpoint)");
  }

  // Starts the collective `launch` makes (on `group`); a failure to start is PeerLost too.
  template <class Launch>
  c10::intrusive_ptr<c10d::Work> start(const std::string& doing, Launch&& launch) {
    try {
      return launch();
    } catch (const std::exception& e) {
      lost(doing, e);
    }
  }

  void wait(c10::intrusive_ptr<c10d::Work>& work, const std::string& doing) {
    try {
      work->wait(timeout);
    } catch (const std::exception& e) {
      lost(doing, e);
    }
  }

  // A collective run to its end.
  template <class Launch>
  void run(const std::string& doing, Launch&& launch) {
    c10::intrusive_ptr<c10d::Work> work = start(doing, std::forward<Launch>(launch));
    wait(work, doing);
  }

  void send(size_t b) {
    Bucket& bucket = buckets[b];
    std::vector<at::Tensor> tensors = {bucket.grads};
    bucket.launched = Clock::now();
    bucket.done_ns = std::make_shared<std::atomic<int64_t>>(0);
    bucket.work = start("sending gradient bucket " + std::to_string(b), [&] { return group->allreduce(tensors); });
    try {
      auto done = bucket.done_ns;
      bucket.work->getFuture()->addCallback([done](c10::ivalue::Future&) {
        done->store(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
      });
    } catch (const std::exception&) {
      // No future for this work: its completion counts from when wait() returns.
    }
  }

  void send_ready() {
    while (next_to_send < buckets.size() && buckets[next_to_send].pending == 0) send(next_to_send++);
  }

  void on_gradient(size_t slot) {
    std::lock_guard<std::mutex> lock(mu);
    if (!sending) return;
    Bucket& b = buckets[bucket_of[slot]];
    if (b.pending > 0) --b.pending;
    if (overlap) send_ready();
  }
};

DataParallel::DataParallel(const World& world, const DistributedConfig& options, torch::Device device)
    : world_(world), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.device = device;
  m.timeout = millis(options.timeout_s);
  m.leader_timeout = millis(std::max(options.timeout_s, options.leader_timeout_s));
  m.overlap = options.overlap;
  m.bucket_mb = options.bucket_mb;
  m.first_bucket_mb = options.first_bucket_mb;
  m.where = "rank " + std::to_string(world.rank) + " of " + std::to_string(world.size) + " (master " + world.master_addr + ":" +
            std::to_string(world.master_port) + ")";
  backend_ = options.backend == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : options.backend;
  if (backend_ == "nccl" && !device.is_cuda())
    throw std::invalid_argument("distributed.backend \"nccl\" needs a CUDA device; train.device is " + device.str() + " (use \"gloo\")");
  if (backend_ == "gloo" && device.is_cuda())
    throw std::invalid_argument("distributed.backend \"gloo\" here averages CPU tensors only; train.device is " + device.str() +
                                " (use \"nccl\" or \"auto\")");
#ifndef I3LAB_WITH_NCCL
  if (backend_ == "nccl")
    throw std::invalid_argument("distributed.backend \"nccl\": this build of i3lab has no NCCL (it needs a CUDA LibTorch)");
#else
  // ProcessGroupNCCL's options hold NCCL's config struct by value, whose size changes between
  // NCCL releases: the nccl.h compiled against must be the release LibTorch loads.
  if (backend_ == "nccl") {
    const std::string compiled = std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + ".";
    const std::string loaded = c10d::getNcclVersion();
    if (loaded.rfind(compiled, 0) != 0)
      throw std::invalid_argument("NCCL " + loaded + " is loaded but i3lab was compiled against nccl.h " + compiled +
                                  std::to_string(NCCL_PATCH) +
                                  ": rebuild with I3LAB_NCCL_INCLUDE_DIR naming the loaded release's include folder (docs/gpu.md)");
  }
#endif
#ifndef I3LAB_WITH_GLOO
  if (backend_ == "gloo")
    throw std::invalid_argument("distributed.backend \"gloo\": this build of i3lab has no Gloo (its LibTorch came without Gloo's "
                                "headers; install libgloo-dev, or use NCCL on GPUs)");
#endif
  if (backend_ != "gloo" && backend_ != "nccl")
    throw std::invalid_argument("distributed.backend must be \"auto\", \"gloo\" or \"nccl\", got \"" + backend_ + "\"");

  // NCCL reports a dead peer or a timeout only with async error handling on (it then ends the
  // process rather than hang); the names before and after LibTorch 2.2.
  setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
  setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);

  // The master's address, checked before the store, whose client would retry a name that does
  // not resolve until its timeout: an error now instead.
  const std::string own_address = local_address_towards(world.master_addr, world.master_port);

  // The store: rank 0 serves it (torchrun's agent does under its static rendezvous). Waiting
  // for it may take the leader's time: rank 0 may be fetching a checkpoint before it starts.
  const bool serve = world.rank == 0 && !world.agent_store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(world.master_port);
    so.isServer = serve;
    // c10::optional in LibTorch 1.x, std::optional in 2.x: spelled through the member's type.
    using Workers = decltype(so.numWorkers);
    so.numWorkers = world.agent_store ? Workers() : Workers(static_cast<std::size_t>(world.size));
    so.waitWorkers = !world.agent_store;
    so.timeout = m.leader_timeout;
    m.store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, so);
  } catch (const std::exception& e) {
    if (serve)
      throw std::runtime_error(m.where + ": cannot serve the rendezvous store on port " + std::to_string(world.master_port) + ": " +
                               Impl::message(e) + " (is the port taken? set MASTER_PORT to a free one)");
    m.lost("meeting the others at the rendezvous store", e);
  }
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(world.store_prefix + "/" + backend_, m.store);
  try {
    if (backend_ == "gloo") {
#ifdef I3LAB_WITH_GLOO
      auto go = c10d::ProcessGroupGloo::Options::create(m.timeout);
      // GLOO_SOCKET_IFNAME names the interface, as in PyTorch; else the address this machine
      // uses to reach the master.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      go->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                              : c10d::ProcessGroupGloo::createDeviceForHostname(own_address));
      m.group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, world.rank, world.size, go);
#endif
    } else {
#ifdef I3LAB_WITH_NCCL
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = m.timeout;
      m.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, world.rank, world.size, no);
#endif
    }
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    m.lost("forming the " + backend_ + " process group", e);
  }
}

DataParallel::~DataParallel() {
  for (auto& [accumulator, key] : impl_->hooks) accumulator->del_post_hook(key);
}

void DataParallel::wait_for_leader(const std::string& what) {
  Impl& m = *impl_;
  const std::string key = "leader/" + std::to_string(m.leader_phases++);
  try {
    if (rank() == 0) m.store->set(key, std::vector<uint8_t>{1});  // {1} alone is ambiguous in 2.x
    else m.store->wait({key}, m.leader_timeout);
  } catch (const std::exception& e) {
    m.lost("waiting while rank 0 " + what, e);
  }
}

std::string DataParallel::share(const std::string& key, const std::string& value) {
  Impl& m = *impl_;
  const std::string k = "share/" + std::to_string(m.shared++) + "/" + key;
  try {
    if (rank() == 0) {
      m.store->set(k, std::vector<uint8_t>(value.begin(), value.end()));
      return value;
    }
    const std::vector<uint8_t> got = m.store->get(k);
    return std::string(got.begin(), got.end());
  } catch (const std::exception& e) {
    m.lost("sharing " + key, e);
  }
}

void DataParallel::broadcast(std::vector<torch::Tensor> tensors) {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  c10d::BroadcastOptions from_rank0;
  from_rank0.rootRank = 0;
  for (torch::Tensor& t : tensors) {
    std::vector<at::Tensor> one = {t};
    m.run("broadcasting rank 0's state", [&] { return m.group->broadcast(one, from_rank0); });
  }
}

void DataParallel::all_reduce_sum(torch::Tensor& t) {
  Impl& m = *impl_;
  std::vector<at::Tensor> one = {t};
  m.run("summing over the ranks", [&] { return m.group->allreduce(one); });
}

std::vector<std::vector<double>> DataParallel::all_gather(const std::vector<double>& values) {
  Impl& m = *impl_;
  const auto options = torch::TensorOptions().dtype(torch::kFloat64).device(m.device);
  std::vector<at::Tensor> input = {torch::tensor(values, torch::kFloat64).to(m.device)};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < size(); ++r) output[0].push_back(torch::empty({static_cast<int64_t>(values.size())}, options));
  m.run("gathering from the ranks", [&] { return m.group->allgather(output, input); });
  std::vector<std::vector<double>> out;
  for (const at::Tensor& t : output[0]) {
    const at::Tensor c = t.cpu();
    out.emplace_back(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  }
  return out;
}

void DataParallel::check_same(uint64_t checksum, const std::string& what) {
  // Two halves, each exact in a double.
  const std::vector<std::vector<double>> all =
      all_gather({static_cast<double>(checksum >> 32), static_cast<double>(checksum & 0xffffffffu)});
  std::string differ;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (!differ.empty())
    throw std::runtime_error(impl_->where + ": " + what + " of rank(s) " + differ +
                             " differ from rank 0's: the ranks no longer train one model (a bug, or a rank built with "
                             "another LibTorch); stopping rather than averaging unrelated gradients");
}

void DataParallel::attach(FlatAdamW& optimizer) {
  Impl& m = *impl_;
  if (!m.buckets.empty()) throw std::logic_error("DataParallel::attach: already attached");
  const auto& slots = optimizer.slots();
  const int64_t element = optimizer.grad_buffer(0).element_size();
  const double mib = 1024.0 * 1024.0;
  // Walk the parameters from last to first, keeping one open bucket per group; a bucket is
  // closed (and takes the next number) when it reaches its size.
  struct Open {
    int64_t lo = -1, hi = -1;  // offsets [lo, hi) in the group
    int params = 0;
    std::vector<size_t> slots;
  };
  std::vector<Open> open(optimizer.groups());
  m.bucket_of.assign(slots.size(), 0);
  m.grad_buffers.clear();
  for (size_t g = 0; g < optimizer.groups(); ++g) m.grad_buffers.push_back(optimizer.grad_buffer(g));
  auto close = [&](size_t g) {
    Open& o = open[g];
    if (o.params == 0) return;
    Impl::Bucket b;
    b.grads = m.grad_buffers[g].narrow(0, o.lo, o.hi - o.lo);
    b.params = o.params;
    for (size_t s : o.slots) m.bucket_of[s] = m.buckets.size();
    m.buckets.push_back(std::move(b));
    o = Open();
  };
  for (size_t i = slots.size(); i-- > 0;) {
    const FlatAdamW::Slot& s = slots[i];
    Open& o = open[s.group];
    if (o.params == 0) o.hi = s.offset + s.numel;
    o.lo = s.offset;
    ++o.params;
    o.slots.push_back(i);
    const double limit_mb = m.buckets.empty() ? m.first_bucket_mb : m.bucket_mb;
    if ((o.hi - o.lo) * element >= limit_mb * mib) close(s.group);
  }
  for (size_t g = 0; g < open.size(); ++g) close(g);
  for (size_t i = 0; i < slots.size(); ++i) {
    auto accumulator = torch::autograd::impl::grad_accumulator(slots[i].param);
    const uintptr_t key = accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          impl_->on_gradient(i);
          return outputs;
        }));
    m.hooks.emplace_back(std::move(accumulator), key);
  }
}

void DataParallel::begin_backward(bool last) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  m.sending = last;
  if (!last) return;
  for (Impl::Bucket& b : m.buckets) {
    b.pending = b.params;
    b.work.reset();
  }
  m.next_to_send = 0;
}

void DataParallel::end_backward(torch::Tensor& values) {
  Impl& m = *impl_;
  const auto start = Clock::now();
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.sending = false;
    // Parameters that took no part in this backward never said they were ready: their (zero)
    // gradients go too, in the same order on every rank.
    for (Impl::Bucket& b : m.buckets) b.pending = 0;
    m.send_ready();
  }
  for (size_t b = 0; b < m.buckets.size(); ++b) m.wait(m.buckets[b].work, "averaging gradient bucket " + std::to_string(b));
  const auto waited = Clock::now();
  all_reduce_sum(values);
  torch::NoGradGuard no_grad;
  const double inverse = 1.0 / size();
  for (torch::Tensor& g : m.grad_buffers) g.mul_(inverse);
  values.mul_(inverse);
  // Communication time: the union of the buckets' [launch, completion] intervals.
  auto at = [&](const Impl::Bucket& b) {
    const int64_t ns = b.done_ns ? b.done_ns->load() : 0;
    return ns ? Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns))) : waited;
  };
  Clock::time_point covered = Clock::time_point::min();
  for (const Impl::Bucket& b : m.buckets) {
    const Clock::time_point from = std::max(b.launched, covered), to = at(b);
    if (to > from) m.stats.seconds += std::chrono::duration<double>(to - from).count();
    covered = std::max(covered, to);
  }
  m.stats.exposed_seconds += std::chrono::duration<double>(waited - start).count();
  ++m.stats.steps;
}

CommStats DataParallel::take_stats() {
  CommStats s = impl_->stats;
  impl_->stats = CommStats();
  return s;
}

namespace {

// The first 64 bits of a SHA-256 digest.
uint64_t leading_bits(util::Sha256& hash) { return std::stoull(hash.hex().substr(0, 16), nullptr, 16); }

}  // namespace

uint64_t DataParallel::checksum(const std::vector<torch::Tensor>& tensors) {
  util::Sha256 hash;
  for (const torch::Tensor& t : tensors) {
    const torch::Tensor c = t.detach().contiguous().cpu();
    hash.update(c.data_ptr(), c.numel() * c.element_size());
  }
  return leading_bits(hash);
}

uint64_t DataParallel::checksum(const std::string& bytes) {
  util::Sha256 hash;
  hash.update(bytes);
  return leading_bits(hash);
}

}  // namespace i3
