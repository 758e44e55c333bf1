"""config.profile_steps: a jax.profiler trace of the course CNN's training steps in W/profile/."""

import glob
import gzip
import json
import os

import pytest

from conftest import DATA_DIR, needs_data, run_cli


@needs_data
@pytest.mark.slow  # a training subprocess: ~30 s on a loaded 2-core machine
def test_five_traced_steps_of_the_course_cnn(tmp_path):
  workdir = tmp_path / "run"
  proc = run_cli("train", "--config=experiments/smoke.py", f"--workdir={workdir}",
                 f"--config.data_dir={DATA_DIR}", "--config.num_epochs=1",
                 "--config.profile_steps=5")
  assert proc.returncode == 0, proc.stderr
  (trace_dir,) = glob.glob(str(workdir / "profile" / "plugins" / "profile" / "*"))
  names = sorted(os.listdir(trace_dir))
  host = names[-1].split(".")[0]  # <host>.trace.json.gz, <host>.xplane.pb
  assert names == ["perfetto_trace.json.gz", f"{host}.trace.json.gz", f"{host}.xplane.pb"]
  with gzip.open(os.path.join(trace_dir, f"{host}.trace.json.gz")) as f:
    events = json.load(f)["traceEvents"]
  steps = [e["args"]["step_num"] for e in events if e.get("name") == "train"]
  assert steps == ["1", "2", "3", "4", "5"]  # after the first (compiling) step, annotated


def test_profile_steps_must_be_a_count():
  proc = run_cli("train", "--config=experiments/smoke.py", "--workdir=/nonexistent/x",
                 "--config.profile_steps=-1")
  assert proc.returncode == 2
  assert proc.stderr == ("cnnlab: error: config.profile_steps must be an integer >= 0 "
                         "(0 = no profile), got -1\n")
