# One helper per kind of target, so that warnings, sanitizers and include
# paths are set the same way everywhere, per target, never globally.

function(tessera_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wconversion
                         -Wno-sign-conversion -Wno-missing-field-initializers)
  if(TESSERA_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(TESSERA_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${TESSERA_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${TESSERA_SANITIZE})
  endif()
endfunction()

# tessera_library(NAME SRCS a.cc ... DEPS public... PRIVATE_DEPS private...)
# Defines target tessera_NAME with alias tessera::NAME; headers are included
# as "common/codec/codec.h" (relative to the repository root).
function(tessera_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(tessera_${name} STATIC ${ARG_SRCS})
  add_library(tessera::${name} ALIAS tessera_${name})
  target_include_directories(tessera_${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(tessera_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  tessera_target_options(tessera_${name})
endfunction()

# tessera_test(NAME SRCS a_test.cc ... DEPS ... [LABELS ...])
function(tessera_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  tessera_target_options(${name})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    PROPERTIES ENVIRONMENT "TESSERA_BIN=$<TARGET_FILE:tessera>"
    DISCOVERY_TIMEOUT 30)
  # The labels are set once the tests are discovered (at ctest time, after the discovery's own
  # script): PROPERTIES above would split a list of several.
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake
       "if(${name}_TESTS)\n  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\")\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake)
endfunction()
