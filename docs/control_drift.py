"""Control drift of a tiny base model: top-1 change after the benchmark's manipulation with lambda = 0.

The loop is robustbench_interp.attacks.finetune.manipulate with the penalty dropped (lambda = 0 adds
exactly zero gradient): Adam on all parameters, eval mode, 500 steps of batch 32 drawn from the
train split by a DataLoader shuffled with a generator seeded by `seed` (torch.manual_seed(seed)
first), lr constant then linear decay to 0 over the last 40 % (finetune.lr_factor). -adv models: free
adversarial CE (eps 4/255, 4 replays per batch), 125 batches x 4 replays = 500 optimizer steps,
the lr schedule over the 125 batches as manipulate() does.

flips_N: [images the base got right and the control wrong, the other way round].

usage: control_drift.py ARCH[-adv] WEIGHTS.pt [--lrs 1e-3 ...] [--seeds 0 1 2] [--n-test 1000 5000]
"""
import argparse
import copy
import json
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from robustbench_interp.attacks.finetune import lr_factor
from robustbench_interp.data.tiny import tiny_split
from robustbench_interp.models import cache, tiny
from robustbench_interp.models.adversarial import FreePerturbation
from robustbench_interp.models.training import accuracy


def control(model0, train, *, lr, seed, adv, steps=500, batch_size=32, cooldown=0.4, eps=4 / 255, replays=4):
    torch.manual_seed(seed)
    model = copy.deepcopy(model0).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True, generator=gen)
    def cycle():
        while True:
            yield from loader
    batches = cycle()
    total = steps // replays if adv else steps
    reps = replays if adv else 1
    pert = FreePerturbation(eps) if adv else None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, cooldown))
    for _ in range(total):
        x, y = next(batches)[:2]
        for _ in range(reps):
            xc = pert.perturb(x) if pert is not None else x
            loss = F.cross_entropy(model(xc), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if pert is not None:
                pert.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def correct(model, data):
    return torch.cat([model(x).argmax(1) == y for x, y in DataLoader(data, batch_size=500)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("weights")
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-test", type=int, nargs="+", default=[1000])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    adv = a.name.endswith("-adv")
    arch = a.name[:-4] if adv else a.name
    model0 = tiny.build(arch)
    model0.load_state_dict(cache.load_state_dict(a.weights))
    model0.eval()
    train = tiny_split("train")
    tests = {n: tiny_split("test", n) for n in a.n_test}
    base = {n: accuracy(model0, t) for n, t in tests.items()}
    right0 = {n: correct(model0, t) for n, t in tests.items()}
    for lr in a.lrs:
        for seed in a.seeds:
            t0 = time.time()
            m = control(model0, train, lr=lr, seed=seed, adv=adv)
            row = {"model": a.name, "lr": lr, "seed": seed, "secs": round(time.time() - t0, 1)}
            for n, t in tests.items():
                acc = accuracy(m, t)
                row[f"base_{n}"] = round(100 * base[n], 2)
                row[f"ctrl_{n}"] = round(100 * acc, 2)
                row[f"drift_{n}"] = round(100 * (acc - base[n]), 2)
                right = correct(m, t)
                row[f"flips_{n}"] = [int((right0[n] & ~right).sum()), int((~right0[n] & right).sum())]
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
