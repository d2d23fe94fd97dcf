#!/bin/sh
# Installs the Python dependencies of one image flavor into /opt/venv (a Docker build step).
#
# Usage: install-deps.sh FLAVOR BUILD_DIR [EXTRAS]
#   FLAVOR     gpu (mxnet-cu112 + CUDA 11 wheels) or cpu (mxnet)
#   BUILD_DIR  holds pyproject.toml and requirements-gpu.txt
#   EXTRAS     optional features to install too: names of pyproject's optional-dependencies,
#              comma-separated (e.g. onnx); empty for none
#
# The dependency list is read from pyproject.toml so the image and `pip install .` never disagree;
# this runs before the source is copied, so editing src/ does not reinstall ~1-3 GB of wheels.
set -eu
flavor=$1
build=$2
extras=${3:-}

case "$flavor" in
  gpu|cpu) ;;
  *) echo "install-deps.sh: FLAVOR=$flavor: expected gpu or cpu" >&2; exit 2 ;;
esac

python3 -m venv /opt/venv
pip=/opt/venv/bin/pip

# pyproject's [project].dependencies plus the flavor's extra (cpu: mxnet, gpu: mxnet-cu112) and the
# EXTRAS asked for, and its build requirements, so the later source layer builds without network
# (--no-build-isolation); `wheel` because a base image's setuptools older than 70.1 has no
# bdist_wheel of its own. An unknown extra fails the build, naming the ones there are.
/opt/venv/bin/python - "$build/pyproject.toml" "$flavor" "$extras" > "$build/requirements.txt" <<'PY'
import sys, tomllib
pyproject = tomllib.load(open(sys.argv[1], "rb"))
project = pyproject["project"]
optional = project["optional-dependencies"]
extra = optional.get(sys.argv[2])
if not extra:
    sys.exit(f"pyproject.toml has no optional-dependencies.{sys.argv[2]} (the mxnet package of this flavor)")
for name in filter(None, (n.strip() for n in sys.argv[3].split(","))):
    if name not in optional or name in ("cpu", "gpu"):
        choices = ", ".join(n for n in optional if n not in ("cpu", "gpu"))
        sys.exit(f"install-deps.sh: EXTRAS names {name!r}; expected some of {choices}, comma-separated")
    extra = extra + optional[name]
print("\n".join(project["dependencies"] + extra + pyproject["build-system"]["requires"] + ["wheel"]))
PY
echo "install-deps.sh: installing for FLAVOR=$flavor EXTRAS=$extras:"; cat "$build/requirements.txt"

if [ "$flavor" = gpu ]; then
  $pip install -r "$build/requirements.txt" -r "$build/requirements-gpu.txt"
else
  $pip install -r "$build/requirements.txt"
fi

# gluoncv requires opencv-python, whose cv2 links libGL and glib (~100 MB of X11/Mesa packages on a
# slim image). The headless build is the same cv2 without GUI functions, which training never uses.
cv=$(/opt/venv/bin/python -c 'import importlib.metadata as m; print(m.version("opencv-python"))')
$pip uninstall -y opencv-python
$pip install "opencv-python-headless==$cv"

if [ "$flavor" = gpu ]; then
  # The nvidia-*-cu11 wheels put their libraries in site-packages/nvidia/*/lib. Registered in
  # ld.so.conf.d rather than LD_LIBRARY_PATH, they resolve for every process, including one started
  # with a replaced environment, for NEEDED entries and for what cuDNN dlopen()s by name
  # (libcudnn_ops_infer.so.8, ...); the NVIDIA runtime's ldconfig run at start keeps them.
  /opt/venv/bin/python -c '
import glob, os, sysconfig
dirs = sorted(glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "*", "lib")))
assert dirs, "no site-packages/nvidia/*/lib directories: the nvidia-*-cu11 wheels did not install"
print("\n".join(dirs))' > /etc/ld.so.conf.d/000-nvidia-cu11-wheels.conf
  ldconfig
  cat /etc/ld.so.conf.d/000-nvidia-cu11-wheels.conf
fi
