"""The llama.cpp servers this app starts on the machine: the local teacher (``teacher_server``)
and the shop's end model for thin desktops (``end_server``), both llama-cpp-python's
OpenAI-compatible app run locked down (``llama_server``: its key required, CORS off, loopback
host names only). Plain Python: nothing here imports Qt."""
