print("pdpipe-bench")
