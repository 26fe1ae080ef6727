# The sync server (docs/sync-server.md): included by server/CMakeLists.txt.
#   server_sync      the library: sessions over the link's TLS (link/), push on publish
#   citypass-server  the daemon, over the sqlite rights database (target `server`)
set(_sync_dir ${CMAKE_CURRENT_LIST_DIR})

add_library(server_sync STATIC
  ${_sync_dir}/src/sync_plan.c
  ${_sync_dir}/src/sync_conn.c
  ${_sync_dir}/src/sync_validate.c
  ${_sync_dir}/src/sync_ingest.c
  ${_sync_dir}/src/sync_figures.c
  ${_sync_dir}/src/sync_admit.c
  ${_sync_dir}/src/sync_server.c)
target_include_directories(server_sync PUBLIC ${_sync_dir}/include PRIVATE ${_sync_dir}/src)
find_package(Threads REQUIRED)
target_link_libraries(server_sync PUBLIC proto link citypass::event citypass::mbedtls Threads::Threads)
if(DEFINED PROJECT_VERSION AND NOT PROJECT_VERSION STREQUAL "")
  target_compile_definitions(server_sync PRIVATE CITYPASS_VERSION="${PROJECT_VERSION}")
endif()

# The daemon needs the rights database's sync backend (server_sync_backend_sqlite), which
# lives in the `server` library.
if(TARGET server)
  add_executable(citypass-server ${_sync_dir}/tools/citypass_server.c
                                 ${_sync_dir}/tools/server_metrics.c)
  target_link_libraries(citypass-server PRIVATE server_sync server service)
endif()
