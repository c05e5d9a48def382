from tokenwheel.cli import main

# Guarded: the inference process is started with multiprocessing's "spawn", which imports
# the parent's main module again in the child.
if __name__ == "__main__":
    raise SystemExit(main())
