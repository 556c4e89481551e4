
t-patroni-promote‚
