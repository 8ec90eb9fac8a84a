// doctest's main(), compiled once (the pgbust_doctest_main object library) for every test binary.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
