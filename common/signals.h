// Orderly shutdown for daemons: SIGTERM and SIGINT are blocked in every thread (call
// BlockShutdownSignals() first thing in main, before any thread starts) and then awaited in one.
#pragma once

namespace pghaul {

void BlockShutdownSignals();
// Blocks until SIGTERM or SIGINT arrives; returns the signal number.
int WaitForShutdownSignal();

}  // namespace pghaul
