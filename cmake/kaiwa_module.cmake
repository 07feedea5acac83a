# kaiwa_module(NAME SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...] [TESTS ...] [TEST_DEPS ...])
#
# Makes the library target kaiwa_NAME (alias kaiwa::NAME) for a top-level module folder and,
# when TESTS are given, the Catch2 binary NAME_test that links only that target (plus
# TEST_DEPS), registered with ctest. Includes are rooted at the repository.
function(kaiwa_module name)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS;TESTS;TEST_DEPS" ${ARGN})
  add_library(kaiwa_${name} STATIC ${arg_SOURCES})
  add_library(kaiwa::${name} ALIAS kaiwa_${name})
  target_include_directories(kaiwa_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(kaiwa_${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  target_link_libraries(kaiwa_${name} PUBLIC ${arg_PUBLIC_DEPS} PRIVATE ${arg_PRIVATE_DEPS})
  if(arg_TESTS AND NOT KAIWA_FUZZ)  # the fuzz build makes only the fuzz targets
    add_executable(${name}_test ${arg_TESTS})
    target_link_libraries(${name}_test PRIVATE kaiwa::${name} kaiwa_test_main ${arg_TEST_DEPS})
    add_test(NAME ${name} COMMAND ${name}_test)
  endif()
endfunction()
