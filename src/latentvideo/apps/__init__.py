"""Front-ends: the command line (cli), the local web page (web) and the demo."""
