"""faiss side of `npm run bench:ann`: the reference app's engine on the same files, same parameters.

Usage: faiss_ivfpq.py DIR TRAIN_RUNS FACTORY [FACTORY...]; the fastest of TRAIN_RUNS trainings is
reported. DIR holds base.fvecs, query.fvecs and truth.ivecs (written
by bench/ann.ts). Prints one JSON object per factory string. Run with Debian's python3-faiss; search is
single-threaded (omp_set_num_threads(1)); training's matrix products go through the system BLAS.
"""
import json
import sys
import time

import faiss
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def recalls(found, truth):
    r1 = float(np.mean(found[:, 0] == truth[:, 0]))
    r10 = float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth)]))
    return r1, r10


def main():
    faiss.omp_set_num_threads(1)
    folder, train_runs, factories = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    xb = read_vecs(f"{folder}/base.fvecs", np.float32)
    xq = read_vecs(f"{folder}/query.fvecs", np.float32)
    gt = read_vecs(f"{folder}/truth.ivecs", np.int32)
    d = xb.shape[1]
    for factory in factories:
        train_s = float("inf")
        for _ in range(train_runs):
            index = faiss.index_factory(d, factory)
            t = time.perf_counter()
            index.train(xb)
            train_s = min(train_s, time.perf_counter() - t)
        t = time.perf_counter()
        index.add(xb)
        add_s = time.perf_counter() - t
        ivf = faiss.extract_index_ivf(index)
        code_size = ivf.code_size
        rows = []
        for nprobe in [1, 4, 16, 64]:
            if nprobe > ivf.nlist:
                continue
            ivf.nprobe = nprobe
            found = np.empty((len(xq), 10), dtype=np.int64)
            t = time.perf_counter()
            for i in range(len(xq)):
                _, ids = index.search(xq[i : i + 1], 10)
                found[i] = ids[0]
            seconds = time.perf_counter() - t
            r1, r10 = recalls(found, gt)
            rows.append({"nprobes": nprobe, "qps": len(xq) / seconds, "recall1": r1, "recall10": r10})
        print(json.dumps({
            "factory": factory,
            "trainSeconds": train_s,
            "addSeconds": add_s,
            # Inverted lists store each code plus a 64-bit id.
            "bytesPerVector": code_size + 8,
            "rows": rows,
        }), flush=True)


if __name__ == "__main__":
    main()
