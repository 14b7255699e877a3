// One compilation unit for step_program.cpp and min_rnn.cpp: most of a source's build time is
// parsing ATen's and torch's headers, so the two smaller sources share one parse, and the first
// build runs two units side by side on a 2-core machine (this one and layer_norm_rnn.cpp)
// instead of three. Each file stays readable on its own.
#include "step_program.cpp"
#include "min_rnn.cpp"
