"""docstore's performance harness: peers, ceilings and workloads behind `bench/run`."""
