"""Builds the native extension fastrepr._C through CMake.

FASTREPR_SKIP_NATIVE=1 skips it: the package then installs as pure Python and every op runs through its
torch (or triton) backend. Metadata lives in pyproject.toml.
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = "Debug" if self.debug else "Release"
        configure = [
            "cmake", str(ROOT),
            f"-DCMAKE_BUILD_TYPE={cfg}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        ]
        jobs = str(os.cpu_count() or 1)
        subprocess.run(configure, cwd=build_dir, check=True)
        subprocess.run(["cmake", "--build", ".", "--config", cfg, "-j", jobs], cwd=build_dir, check=True)


skip_native = os.environ.get("FASTREPR_SKIP_NATIVE", "0") not in ("", "0")
setup(
    ext_modules=[] if skip_native else [CMakeExtension("fastrepr._C")],
    cmdclass={} if skip_native else {"build_ext": CMakeBuild},
)
