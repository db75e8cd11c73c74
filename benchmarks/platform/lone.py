"""What adaptive batching costs a lone request, per runtime: the evidence for turning it on by default.

    .venv/bin/python benchmarks/platform/lone.py [--rounds 5] [--duration 5]

For each runtime (scikit-learn LogisticRegression on iris, the 200-tree forest, XGBoost and LightGBM
classifiers on iris, a no-op python model) one model server with batching on and one with it off
(``python -m modelpier.server REF [--no-batching]``), all pinned to core 0 and started once; ``wrk -t1``
on core 1 at 1 connection (a lone request: nothing to merge, so any difference is what the batcher
costs) and at 8 (what it buys). Rounds are interleaved, on/off order alternating per round; the table
shows medians of p50, p99 and req/s, and the on/off ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import body_for, free_port, lua_script, train, wait_ready, wrk

PY = sys.executable
NOOP = '''
class Noop:
    def load(self, path):
        pass

    def predict(self, inputs):
        return {"predict": inputs["input-0"][:, 0]}
'''


def save_models(home: Path) -> dict[str, str]:
    """Registry models by runtime; returns runtime -> (reference, body model)."""
    import lightgbm
    import xgboost
    from sklearn.datasets import load_iris

    import modelpier
    from modelpier.settings import load_settings

    settings = load_settings(home=home)
    models = train(home)
    x, y = load_iris(return_X_y=True)
    modelpier.save_model("iris", models["iris"], input_example=x[:2], settings=settings)
    modelpier.save_model("forest", models["forest"], settings=settings)
    modelpier.save_model("xgb", xgboost.XGBClassifier(n_estimators=50, max_depth=4).fit(x, y),
                         input_example=x[:2], settings=settings)
    modelpier.save_model("lgbm", lightgbm.LGBMClassifier(n_estimators=50, verbose=-1).fit(x, y),
                         input_example=x[:2], settings=settings)
    folder = home / "noop-src"
    folder.mkdir()
    (folder / "model.py").write_text(NOOP)
    (folder / "python-model.json").write_text(json.dumps({"class": "Noop"}))
    modelpier.save_model("noop", folder, flavor="python", settings=settings)
    return {"sklearn (iris)": "iris", "sklearn (forest)": "forest", "xgboost": "xgb", "lightgbm": "lgbm",
            "python (no-op)": "noop"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pier-bench-lone-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIER_")}
    env.update(PIER_HOME=str(home), PIER_USER="bench", PIER_LOG_LEVEL="warning")
    os.environ.update(env)
    runtimes = save_models(home)
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[tuple[str, bool], str] = {}
    scripts: dict[str, Path] = {}
    try:
        for runtime, ref in runtimes.items():
            body = body_for("forest" if ref == "forest" else "iris", ())
            scripts[runtime] = lua_script(home, ref, body)
            for batching in (True, False):
                port = free_port()
                cmd = ["taskset", "-c", "0", PY, "-m", "modelpier.server", ref, "--http-port", str(port), "--no-grpc",
                       "--log-level", "warning", "--batching" if batching else "--no-batching"]
                procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))
                urls[(runtime, batching)] = f"http://127.0.0.1:{port}/v2/models/{ref}/infer"
        for (runtime, _), url in urls.items():
            wait_ready(url, body_for("forest" if runtimes[runtime] == "forest" else "iris", ()))
        results: dict[tuple[str, bool, int], list[dict[str, float]]] = {}
        for i in range(args.rounds):
            for runtime in runtimes:
                order = (True, False) if i % 2 == 0 else (False, True)
                for c in (1, 8):
                    for batching in order:
                        r = wrk(urls[(runtime, batching)], scripts[runtime], c, args.duration)
                        results.setdefault((runtime, batching, c), []).append(r)
                        print(f"round {i + 1} {runtime:17s} batching {'on ' if batching else 'off'} c={c} "
                              f"{r['rps']:8.0f} req/s p50 {r['p50']:.3f} ms p99 {r['p99']:.3f} ms", flush=True)

        def med(key: tuple[str, bool, int], field: str) -> float:
            return statistics.median(r[field] for r in results[key])

        load = os.getloadavg()
        print(f"\nmedians of {args.rounds} rounds of {args.duration:g} s; load average at the end {load[0]:.2f}")
        print("| runtime | c=1 p50 on / off (ms) | c=1 p99 on / off (ms) | c=1 req/s on / off | "
              "c=8 req/s on / off |")
        print("|---|---|---|---|---|")
        for runtime in runtimes:
            on1, off1 = (runtime, True, 1), (runtime, False, 1)
            on8, off8 = (runtime, True, 8), (runtime, False, 8)
            print(f"| {runtime} | {med(on1, 'p50'):.3f} / {med(off1, 'p50'):.3f} | {med(on1, 'p99'):.3f} / "
                  f"{med(off1, 'p99'):.3f} | {med(on1, 'rps'):,.0f} / {med(off1, 'rps'):,.0f} "
                  f"({med(on1, 'rps') / med(off1, 'rps'):.2f}) | {med(on8, 'rps'):,.0f} / {med(off8, 'rps'):,.0f} "
                  f"({med(on8, 'rps') / med(off8, 'rps'):.2f}) |")
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
