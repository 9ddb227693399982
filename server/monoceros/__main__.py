from monoceros.cli import main

# Guarded: worker processes are spawned (multiprocessing "spawn") and re-import this module.
if __name__ == "__main__":
    main(prog_name="monoceros")
