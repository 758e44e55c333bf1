"""The bad-input catalogue: every shell command, fed garbage, answers with one line and exit 2.

Each case runs the real command in a subprocess (as a user would) and checks: exit code 2, one
line on stderr starting `cnnlab: error:` that names the problem, no traceback, nothing on
stdout, and the directory or file it names (--workdir, --out) is as it was: unchanged if it
existed, still absent if it did not (a failed command leaves nothing behind). Cases run two at
a time, once per session.
"""

import concurrent.futures
import gzip
import hashlib
import json
import os
import shutil

import pytest

from conftest import DATA_DIR, REPO, needs_data, run_cli

SMOKE = f"--config={REPO}/experiments/smoke.py"


def _tree_digest(path):
  """A digest of everything under `path`: directory names, file names and contents."""
  if not os.path.exists(path):
    return "absent"
  if os.path.isfile(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()
  h = hashlib.sha256()
  for root, dirs, files in sorted(os.walk(path)):
    dirs.sort()
    h.update(root.encode())
    for name in sorted(set(files) - {".lock"}):  # the lock's pid record is not a result
      full = os.path.join(root, name)
      h.update(full.encode())
      with open(full, "rb") as f:
        h.update(f.read())
  return h.hexdigest()


def _watched(argv, workdir):
  """The path a case must leave as it was: its workdir, or what --workdir/--out names."""
  named = [a.split("=", 1)[1] for a in argv if a.startswith(("--workdir=", "--out="))]
  return workdir or (named[0] if named else None)


@pytest.fixture(scope="session")
def garbage(smoke_run, tmp_path_factory):
  """Files and workdirs to feed the commands (fake data only where it is the point: bad files)."""
  root = tmp_path_factory.mktemp("garbage")
  finished = root / "finished"
  shutil.copytree(smoke_run[0], finished)
  for name in ("unfinished", "unfinished2"):  # one per case: cases run concurrently
    shutil.copytree(smoke_run[0], root / name)
    os.remove(root / name / "results.json")
  (root / "empty_run").mkdir()
  (root / "not_an_image.png").write_text("this is text, not a PNG")
  for name, mutate in {"truncated": lambda b: b[:len(b) // 2],
                       "bad_magic": lambda b: b"\x00\x00\x09\x99" + b[4:]}.items():
    d = root / name
    d.mkdir()
    for f in os.listdir(DATA_DIR):  # the train split only: the cases never reach the test set
      if "train-labels" in f:
        shutil.copy(os.path.join(DATA_DIR, f), d / f)
      elif "train-images" in f:
        with gzip.open(d / f, "wb", compresslevel=1) as out:
          out.write(mutate(gzip.open(os.path.join(DATA_DIR, f)).read()))
  (root / "file").write_text("a file where a directory is expected")
  for name, model in (("config_only", None), ("other_model", "fashion_dnn")):  # no checkpoints
    (root / name).mkdir()
    config = json.loads((finished / "config.json").read_text())
    config["model"] = {"name": model} if model else config["model"]
    (root / name / "config.json").write_text(json.dumps(config))
  _bad_folders(root)
  return root


def _bad_folders(root):
  """folder: datasets with one thing wrong each (pictures drawn with PIL; fake on purpose)."""
  from PIL import Image
  grey = lambda size=(24, 24): Image.new("L", size, 9)
  for name, files in {
      "empty": {}, "one_class": {"a/0.png": grey()},
      "no_images": {"a/0.png": grey(), "b/": None},
      "non_image": {"a/0.png": grey(), "b/0.png": grey(), "b/notes.txt": "text"},
      "mixed_sizes": {"a/0.png": grey(), "b/0.png": grey((30, 20))},
      "truncated_image": {"a/0.png": grey(), "b/0.jpg": Image.new("RGB", (64, 64), (9, 200, 3))},
  }.items():
    (root / name).mkdir()
    for rel, content in files.items():
      path = root / name / rel
      os.makedirs(path if content is None else path.parent, exist_ok=True)
      if isinstance(content, str):
        (root / name / rel).write_text(content)
      elif content is not None:
        content.save(root / name / rel)
  jpeg = root / "truncated_image" / "b" / "0.jpg"
  jpeg.write_bytes(jpeg.read_bytes()[:-30])  # an interrupted copy: the end marker is gone


def cases(g):
  """name -> (argv, words the error line must contain, workdir that must stay unchanged)."""
  fin, unf, unf2 = str(g / "finished"), str(g / "unfinished"), str(g / "unfinished2")
  table = {
      # train
      "train: unknown model": (["train", SMOKE, "--config.model.name=lenet", f"--workdir={g}/fresh1"], ["unknown model"], None),
      "train: missing config": (["train", "--config=experiments/nope.py", f"--workdir={g}/fresh2"], ["nope.py"], None),
      "train: negative lr": (["train", SMOKE, "--config.optimizer.learning_rate=-1", f"--workdir={g}/fresh3"], ["learning_rate"], None),
      "train: batch 0": (["train", SMOKE, "--config.batch_size=0", f"--workdir={g}/fresh4"], ["batch_size"], None),
      "train: unknown key": (["train", SMOKE, "--config.batch_sise=3", f"--workdir={g}/fresh5"], ["batch_sise", "batch_size"], None),
      "train: wrong type": (["train", SMOKE, "--config.num_epochs=two", f"--workdir={g}/fresh6"], ["num_epochs"], None),
      "train: unknown input mode": (["train", SMOKE, "--config.input=streamed", f"--workdir={g}/fresh_input"], ["config.input must be auto, resident or stream, got 'streamed'"], None),
      "train: stream with seeds": (["train", SMOKE, "--config.input=stream", "--config.num_seeds=2", f"--workdir={g}/fresh_input2"], ["--config.num_seeds=1 or --config.input=resident"], None),
      "train: missing data dir": (["train", SMOKE, "--data_dir=/nonexistent/fm", f"--workdir={g}/fresh7"], ["/nonexistent/fm"], None),
      "train: truncated IDX": (["train", SMOKE, f"--data_dir={g}/truncated", f"--workdir={g}/fresh8"], ["truncated"], None),
      "train: garbled IDX": (["train", SMOKE, f"--data_dir={g}/bad_magic", f"--workdir={g}/fresh9"], ["magic number"], None),
      "train: data dir is a file": (["train", SMOKE, f"--data_dir={g}/file", f"--workdir={g}/fresh10"], ["does not exist"], None),
      "train: validation fraction": (["train", SMOKE, "--config.validation_fraction=1.5", f"--workdir={g}/fresh11"], ["validation_fraction"], None),
      "train: dropout 1.5": (["train", SMOKE, "--config.model.dropout=1.5", f"--workdir={g}/fresh12"], ["dropout"], None),
      "train: resume=maybe": (["train", SMOKE, "--resume=maybe", f"--workdir={g}/fresh13"], ["resume"], None),
      "train: too many devices": (["train", SMOKE, "--config.num_devices=64", f"--workdir={g}/fresh14"], ["num_devices=64"], None),
      "train: epochs 0": (["train", SMOKE, "--config.num_epochs=0", f"--workdir={g}/fresh15"], ["num_epochs"], None),
      "train: unknown optimizer": (["train", SMOKE, "--config.optimizer.name=rmsprop", f"--workdir={g}/fresh16"], ["rmsprop"], None),
      "train: unknown schedule": (["train", SMOKE, "--config.optimizer.schedule=linear", f"--workdir={g}/fresh17"], ["linear"], None),
      "train: positional argument": (["train", SMOKE, "oops", f"--workdir={g}/fresh18"], ["oops"], None),
      "train: workdir under a file": (["train", SMOKE, f"--workdir={g}/file/run"], ["workdir"], None),
      "train: noresume over checkpoints": (["train", SMOKE, "--noresume", f"--workdir={unf}"], ["already has checkpoints"], unf),
      "train: whitening with an odd conv1 width": (["train", f"--config={REPO}/experiments/speedrun_93.py", "--config.model.widths=(17,32)", f"--workdir={g}/w17"], ["whiten_eps", "widths=(18,"], None),
      "train: folder: empty": (["train", SMOKE, f"--config.dataset=folder:{g}/empty", f"--workdir={g}/fo1"], ["no class subfolders", "PATH/CLASS_NAME/"], None),
      "train: folder: one class": (["train", SMOKE, f"--config.dataset=folder:{g}/one_class", f"--workdir={g}/fo2"], ["only one class subfolder (a)", "at least 2"], None),
      "train: folder: class without images": (["train", SMOKE, f"--config.dataset=folder:{g}/no_images", f"--workdir={g}/fo3"], ["no_images/b holds no images"], None),
      "train: folder: non-image file": (["train", SMOKE, f"--config.dataset=folder:{g}/non_image", f"--workdir={g}/fo4"], ["b/notes.txt: not an image file", "skip_bad_images"], None),
      "train: folder: truncated image": (["train", SMOKE, f"--config.dataset=folder:{g}/truncated_image", f"--workdir={g}/fo5"], ["b/0.jpg: truncated JPEG file", "skip_bad_images"], None),
      "train: folder: sizes vary, image_size 0": (["train", SMOKE, f"--config.dataset=folder:{g}/mixed_sizes", f"--workdir={g}/fo6"], ["different sizes", "--config.image_size=N"], None),
      "train: image_size huge": (["train", SMOKE, f"--config.dataset=folder:{g}/mixed_sizes", "--config.image_size=4096", f"--workdir={g}/fo7"], ["image_size", "0..512", "4096"], None),
      "train: unknown TFDS name": (["train", SMOKE, "--config.dataset=tfds:no_such_dataset_xyz", f"--workdir={g}/fo8"], ["unknown TFDS dataset 'no_such_dataset_xyz'"], None),
      "train: TFDS without images": (["train", SMOKE, "--config.dataset=tfds:imdb_reviews", f"--workdir={g}/fo9"], ["tfds:imdb_reviews has no image feature"], None),
      "train: resume another model": (["train", f"--config={REPO}/experiments/fashion_dnn.py", f"--workdir={unf2}"], ["different model"], unf2),
      # summary / conv / edges
      "summary: unknown model": (["summary", "--model=resnet9000"], ["resnet9000"], None),
      "summary: bad input shape": (["summary", "--input_shape=28,x,1"], ["input_shape"], None),
      "conv: ragged list": (["conv", "--image=[[1,2],[3]]", "--kernel=[[1]]"], ["ragged"], None),
      "conv: stride 0": (["conv", "--image=[[1,2],[3,4]]", "--kernel=[[1]]", "--stride=0"], ["stride"], None),
      "conv: unknown padding": (["conv", "--image=[[1,2],[3,4]]", "--kernel=[[1]]", "--padding=diagonal"], ["diagonal"], None),
      "conv: kernel larger than image": (["conv", "--image=[[1,2],[3,4]]", "--kernel=[[1,1,1],[1,1,1],[1,1,1]]"], ["kernel"], None),
      "edges: index out of range": (["edges", "--index=70000", f"--data_dir={DATA_DIR}", f"--out={g}/e.png"], ["70000"], None),
      # viz / predict
      "viz: no such workdir": (["viz", f"--workdir={g}/nope"], ["does not exist"], None),
      "viz: workdir without checkpoint": (["viz", f"--workdir={g}/empty_run"], ["empty_run"], None),
      "viz: unknown layer": (["viz", f"--workdir={fin}", "--layer=conv9"], ["conv9", "conv1"], fin),
      "viz: index out of range": (["viz", f"--workdir={fin}", "--index=999999"], ["999999"], fin),
      "predict: not an image": (["predict", f"--workdir={fin}", f"--image={g}/not_an_image.png"], ["not_an_image.png"], fin),
      "predict: index out of range": (["predict", f"--workdir={fin}", "--index=-5"], ["-5"], fin),
      "predict: unknown language": (["predict", f"--workdir={fin}", "--index=0", "--lang=fr"], ["lang"], fin),
      # export (the first --out/--workdir is the path that must stay as it was)
      "export: unknown format": (["export", f"--out={g}/w.onnx", f"--workdir={fin}", "--format=onnx"], ["format", "onnx"], None),
      "export: wrong file ending": (["export", f"--out={g}/w.txt", f"--workdir={fin}", "--format=npz"], ["w.txt", ".npz"], None),
      "export: workdir without checkpoint": (["export", f"--workdir={g}/config_only", "--format=npz"], ["no checkpoint", "train"], None),
      "export: keras of another model": (["export", f"--workdir={g}/other_model", "--format=keras"], ["fashion_dnn", "textbook_cnn", "--format=npz"], None),
      "export: torch of another model": (["export", f"--out={g}/w.pt", f"--workdir={g}/other_model", "--format=torch"], ["fashion_dnn", "course CNN"], None),
      # bench
      "bench: batch size 0": (["bench", "--batch_sizes=0"], ["batch_sizes"], None),
      "bench: batch sizes not numbers": (["bench", "--batch_sizes=abc"], ["batch_sizes"], None),
      "bench: unknown baseline": (["bench", "--against=tensorflow"], ["against"], None),
      "bench: one seed": (["bench", "--seeds_vs_sequential=1"], ["seeds_vs_sequential"], None),
      "bench: unknown model": (["bench", "--against=none", "--config.model.name=resnet"], ["unknown model"], None),
      # speedrun
      "speedrun: target above 1": (["speedrun", "--target=1.5"], ["target", "(0, 1)"], None),
      "speedrun: target 0": (["speedrun", "--config.speedrun.target=0"], ["target", "(0, 1)"], None),
      "speedrun: negative time limit": (["speedrun", "--time_limit=-5"], ["time limit", ">= 0"], None),
      "speedrun: no target": (["speedrun", f"--config={REPO}/experiments/fast.py"], ["speedrun.target", "--target=0.91"], None),
      "speedrun: unknown model": (["speedrun", "--config.model.name=resnet"], ["unknown model"], None),
      "speedrun: plot a non-record": (["speedrun", f"--plot={g}/not_an_image.png", f"--out={g}/curve.png"], ["not_an_image.png", "JSON"], None),
      "speedrun: plot to a .json": (["speedrun", "--plot=bench/results/speedrun-0.93-2026-12-02-2core.json", f"--out={g}/curve.json"], ["curve.json", ".png"], None),
      # sweep
      "sweep: no '='": (["sweep", SMOKE, "--sweep=config.seed", f"--workdir={g}/sw1"], ["config.seed"], None),
      "sweep: unknown key": (["sweep", SMOKE, "--sweep=config.optimizer.lr=1,2", f"--workdir={g}/sw2"], ["learning_rate"], None),
      "sweep: empty grid": (["sweep", SMOKE, f"--workdir={g}/sw3"], ["--sweep"], None),
      "sweep: bad value type": (["sweep", SMOKE, "--sweep=config.batch_size=a,b", f"--workdir={g}/sw4"], ["batch_size"], None),
      "sweep: parallel 0": (["sweep", SMOKE, "--sweep=config.seed=0,1", "--parallel=0", f"--workdir={g}/sw5"], ["parallel"], None),
  }
  return table  # each case has its own fresh workdir: they run concurrently and lock them


# The quick tier runs these; `--all` runs every case.
QUICK = {"train: unknown model", "train: batch 0", "train: missing data dir",
         "train: folder: truncated image",
         "train: resume another model", "viz: unknown layer", "predict: not an image",
         "conv: stride 0", "sweep: unknown key", "speedrun: target above 1",
         "export: keras of another model"}


@pytest.fixture(scope="session")
def outcomes(garbage, request):
  """Runs the cases this session selected (two at a time), once."""
  selected = {item.callspec.params["name"] for item in request.session.items
              if item.originalname == "test_bad_input"}
  table = {name: case for name, case in cases(garbage).items() if name in selected}
  watched = {name: _watched(argv, wd) for name, (argv, _, wd) in table.items()}
  before = {name: _tree_digest(path) for name, path in watched.items() if path}
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    procs = dict(zip(table, pool.map(lambda args: run_cli(*args[0]), table.values())))
  after = {name: _tree_digest(watched[name]) for name in before}
  return table, procs, before, after


def test_catalogue_is_large_enough(garbage):
  assert len(cases(garbage)) >= 30


@needs_data
@pytest.mark.timeout(900)  # the first case's setup runs every selected command (62 with --all)
@pytest.mark.parametrize("name", [
    name if name in QUICK else pytest.param(name, marks=pytest.mark.slow)
    for name in sorted(cases(__import__("pathlib").Path("/g")))])
def test_bad_input(outcomes, name):
  table, procs, before, after = outcomes
  argv, words, workdir = table[name]
  proc = procs[name]
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 2, (argv, proc.returncode, proc.stderr[-1500:])
  assert "Traceback" not in proc.stderr, proc.stderr
  assert len(lines) == 1 and lines[0].startswith("cnnlab: error:"), proc.stderr
  for word in words:
    assert word in lines[0], (word, lines[0])
  assert proc.stdout == "", proc.stdout
  path = _watched(argv, workdir)
  if path:  # every case but summary/conv/bench/speedrun (they write nothing) names one
    assert before[name] == after[name], f"{path} was " + (
        "created" if before[name] == "absent" else "changed")
  else:
    assert argv[0] in ("summary", "conv", "bench", "speedrun"), argv
