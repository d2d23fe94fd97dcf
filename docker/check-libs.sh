#!/bin/sh
# Proves that the image carries every shared library MXNet needs, without a GPU.
#
# libmxnet.so and every library of the nvidia-*-cu11 wheels (some are dlopen()ed, so ldd of
# libmxnet.so alone would not reach them) must resolve with ldd, except libcuda.so.1, which the
# NVIDIA container runtime mounts from the host driver. Then `import mxnet` must either succeed
# (CPU flavor, or a GPU host) or fail only because libcuda.so.1 is missing.
# Exit 0 when all holds; otherwise prints what is missing and exits 1.
set -eu
py=/opt/venv/bin/python
site=$($py -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
libmxnet="$site/mxnet/libmxnet.so"
[ -f "$libmxnet" ] || { echo "check-libs: $libmxnet does not exist (mxnet not installed?)" >&2; exit 1; }

bad=0
checked=0
for lib in "$libmxnet" $(find "$site/nvidia" -name 'lib*.so*' -type f 2>/dev/null | sort); do
  checked=$((checked + 1))
  missing=$(ldd "$lib" | awk '/not found/ {print $1}' | grep -vx 'libcuda.so.1' || true)
  if [ -n "$missing" ]; then
    echo "check-libs: $lib: unresolved: $(echo $missing)" >&2
    bad=1
  fi
done
echo "check-libs: $checked libraries checked with ldd"
echo "check-libs: libmxnet.so needs:"
ldd "$libmxnet" | sed 's/^/  /'

out=$($py -c 'import mxnet; print("mxnet", mxnet.__version__, "imported")' 2>&1) && status=0 || status=$?
if [ "$status" = 0 ]; then
  echo "check-libs: $out"
elif echo "$out" | tail -n 1 | grep -q 'libcuda.so.1: cannot open shared object file'; then
  echo "check-libs: import mxnet fails only for the driver library: $(echo "$out" | tail -n 1)"
else
  echo "check-libs: import mxnet failed for another reason than the missing driver:" >&2
  echo "$out" >&2
  bad=1
fi
exit $bad
