
t-patroni-rejoin‚