"""Built-in copies of examples/flux/sum2x.* so the demo runs from an installed wheel
too (tests/flux/test_examples.py keeps the copies identical)."""

SUM2X_SOURCE = '; a + 2*b, written the long way round: evolution finds the short way.\n    SENSE 0       ; a\n    PUSH 0\n    ADD           ; a + 0\n    SENSE 1       ; b\n    SWAP\n    SWAP\n    PUSH 2\n    MUL           ; 2b\n    ADD\n    NOP\n    DUP\n    POP\n    ACT 0\n    HALT\n'

SUM2X_TESTS = '[\n  {"input": [1, 2], "output": [5]},\n  {"input": [3, 4], "output": [11]},\n  {"input": [-5, 7], "output": [9]},\n  {"input": [100, -3], "output": [94]},\n  {"input": [0, 0], "output": [0]}\n]\n'
