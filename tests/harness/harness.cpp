// Test harness implementation (see harness.hpp).
#include "harness.hpp"
