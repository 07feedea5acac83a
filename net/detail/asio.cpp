// Boost.Asio and Boost.Beast compiled once here (separate compilation), instead of in every
// file that uses them. Every target linking kaiwa::asio gets the matching definitions.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
