# Every test runs under citypass-test-guard (tests/support/test_guard.c): its own process
# group, a subreaper that adopts what the test orphans, and a failure naming any process
# the test leaves running. The fixture test `tests_left_nothing`, run after all the others,
# fails when a process of this build tree's tests is still alive (issue 13, item 6).

# citypass_add_test(NAME name COMMAND command [args...]): add_test under the guard.
function(citypass_add_test)
  cmake_parse_arguments(T "" "NAME" "COMMAND" ${ARGN})
  if(NOT T_NAME OR NOT T_COMMAND)
    message(FATAL_ERROR "citypass_add_test(NAME name COMMAND command...)")
  endif()
  # add_test resolves a target name only in first place, which is the guard's here
  list(GET T_COMMAND 0 first)
  if(TARGET ${first})
    list(REMOVE_AT T_COMMAND 0)
    list(INSERT T_COMMAND 0 $<TARGET_FILE:${first}>)
  endif()
  add_test(NAME ${T_NAME}
           COMMAND $<TARGET_FILE:citypass-test-guard> run --name ${T_NAME}
                   --build-dir ${CMAKE_BINARY_DIR} -- ${T_COMMAND})
  # tests_left_nothing (citypass_tests_finish) runs after every test requiring this
  set_property(TEST ${T_NAME} APPEND PROPERTY FIXTURES_REQUIRED citypass_processes)
  set_property(GLOBAL APPEND PROPERTY CITYPASS_GUARDED_TESTS ${T_NAME})
endfunction()

# citypass_unit_test(NAME SOURCES... LIBS...): a cmocka test binary registered with ctest
# under the label `unit`.
function(citypass_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} citypass::cmocka)
  citypass_add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 300)
endfunction()

function(_citypass_collect_tests dir out)
  get_property(tests DIRECTORY ${dir} PROPERTY TESTS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _citypass_collect_tests(${sub} more)
    list(APPEND tests ${more})
  endforeach()
  set(${out} ${tests} PARENT_SCOPE)
endfunction()

# Called once, at the end of the top-level CMakeLists.txt: every test of the tree must have
# been added with citypass_add_test (which makes it require the fixture whose cleanup is
# the sweep).
function(citypass_tests_finish)
  add_test(NAME tests_left_nothing
           COMMAND $<TARGET_FILE:citypass-test-guard> sweep --build-dir ${CMAKE_BINARY_DIR})
  set_tests_properties(tests_left_nothing PROPERTIES FIXTURES_CLEANUP citypass_processes
                       TIMEOUT 60)
  _citypass_collect_tests(${PROJECT_SOURCE_DIR} all)
  get_property(guarded GLOBAL PROPERTY CITYPASS_GUARDED_TESTS)
  foreach(t IN LISTS all)
    if(t STREQUAL "tests_left_nothing")
      continue()
    endif()
    if(NOT t IN_LIST guarded)
      message(FATAL_ERROR "test '${t}' is not run under citypass-test-guard: register it "
                          "with citypass_add_test(NAME ... COMMAND ...) (tests/testing.cmake), "
                          "so that nothing it starts outlives it")
    endif()
  endforeach()
endfunction()
