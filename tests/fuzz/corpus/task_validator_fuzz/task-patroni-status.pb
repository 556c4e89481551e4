
t-patroni-status‚