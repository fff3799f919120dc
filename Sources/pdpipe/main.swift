import Pipeline
print("pdpipe")
