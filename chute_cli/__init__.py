"""The chute command line: run the local stack, upload files, watch sessions, run the demo."""
