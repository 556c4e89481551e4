
t-patroni-start‚