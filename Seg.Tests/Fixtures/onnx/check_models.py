#!/usr/bin/python3
"""Validates ONNX files with onnx.checker.check_model(full_check=True): the IR, every node against its operator
schema at the file's opset, and strict shape inference. Meant for Debian 12's python3-onnx (1.12, from apt), run by
Seg.Tests' OnnxCheckerTests. Prints one line per file; exits 1 if any file fails."""
import sys

import onnx
import onnx.checker

failed = 0
for path in sys.argv[1:]:
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        print(f"ok {path} opset {model.opset_import[0].version} ir {model.ir_version}")
    except Exception as e:  # report every file, then fail
        failed += 1
        print(f"FAIL {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
print(f"onnx {onnx.__version__}: {len(sys.argv) - 1 - failed} ok, {failed} failed")
sys.exit(1 if failed else 0)
