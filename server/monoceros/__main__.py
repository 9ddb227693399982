from monoceros.cli import main

main(prog_name="monoceros")
