"""Methods the benchmark measured and did not adopt; runnable from the API and the benchmark."""
