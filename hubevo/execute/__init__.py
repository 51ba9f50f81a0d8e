"""Stage 2's engine: where candidate jobs run (in this process, or on Ray), and racing over them."""
