
t-patroni-prepare-restored‚