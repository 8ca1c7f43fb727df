#include <shoal/version.hpp>
