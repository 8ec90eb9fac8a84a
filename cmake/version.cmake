# The build's version and revision, for `pgbust --version` and pgbust_build_info.
# The version is the project's (CMakeLists.txt); the revision is `git describe` of the source
# tree at configure time (a tag, or the commit, "-dirty" when the tree has changes), or
# PGBUST_REVISION when given (packagers building from a tarball), else "unknown".
set(PGBUST_REVISION "" CACHE STRING "revision to report instead of git describe (e.g. for a package build)")

function(pgbust_generate_version out)
  set(revision "${PGBUST_REVISION}")
  if(revision STREQUAL "")
    set(revision "unknown")
    find_package(Git QUIET)
    if(GIT_FOUND AND EXISTS "${CMAKE_SOURCE_DIR}/.git")
      execute_process(
        COMMAND "${GIT_EXECUTABLE}" -C "${CMAKE_SOURCE_DIR}" describe --always --dirty --abbrev=12
        OUTPUT_VARIABLE described OUTPUT_STRIP_TRAILING_WHITESPACE
        RESULT_VARIABLE rc ERROR_QUIET)
      if(rc EQUAL 0 AND NOT described STREQUAL "")
        set(revision "${described}")
      endif()
      # Re-run configure when HEAD moves, so the revision follows commits.
      execute_process(
        COMMAND "${GIT_EXECUTABLE}" -C "${CMAKE_SOURCE_DIR}" rev-parse --absolute-git-dir
        OUTPUT_VARIABLE git_dir OUTPUT_STRIP_TRAILING_WHITESPACE
        RESULT_VARIABLE rc ERROR_QUIET)
      if(rc EQUAL 0 AND EXISTS "${git_dir}/HEAD")
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${git_dir}/HEAD")
        if(EXISTS "${git_dir}/logs/HEAD")
          set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${git_dir}/logs/HEAD")
        endif()
      endif()
    endif()
  endif()
  set(PGBUST_BUILD_REVISION "${revision}")
  set(PGBUST_BUILD_REVISION "${revision}" PARENT_SCOPE)
  configure_file("${CMAKE_SOURCE_DIR}/cmake/version.cpp.in" "${out}" @ONLY)
endfunction()
