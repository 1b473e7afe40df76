# What `cmake --install` puts under the prefix, and the Debian package (CPack) made of it:
#   bin/tessera                          the one binary (every role, every command)
#   share/tessera/web/                   the viewer page with its bundled scripts (found by the
#                                        binary at ../share/tessera/web)
#   lib/systemd/system/tessera*.service  the whole stack, or the manager alone
#   share/doc/tessera/                   README, LICENSE and docs/
include(GNUInstallDirs)

install(TARGETS tessera RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES web/index.html web/app.js web/style.css DESTINATION ${CMAKE_INSTALL_DATADIR}/tessera/web)
if(EXISTS ${PROJECT_SOURCE_DIR}/web/vendor/openseadragon)
  install(DIRECTORY web/vendor DESTINATION ${CMAKE_INSTALL_DATADIR}/tessera/web PATTERN STAMP EXCLUDE)
else()
  message(WARNING "web/vendor/ is not built (scripts/install-deps builds it): the installed viewer page "
                  "will lack OpenSeadragon and Neuroglancer")
endif()

# The units name the installed binary: written at install time, when the prefix is known
# (`cmake --install --prefix P`, or /usr inside the Debian package).
install(CODE "
  foreach(unit tessera tessera-manager)
    set(TESSERA_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
    set(TESSERA_DOCDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}\")
    set(out \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/\${unit}.service\")
    message(STATUS \"Installing: \${out}\")
    configure_file(${PROJECT_SOURCE_DIR}/deploy/\${unit}.service.in \"\${out}\" @ONLY)
  endforeach()")

# What a cluster needs: the Slurm batch script (tessera serve scaler --script), the HTCondor
# submit description, the Kubernetes manifests.
install(DIRECTORY deploy/slurm deploy/htcondor deploy/kubernetes DESTINATION ${CMAKE_INSTALL_DATADIR}/tessera/deploy
        USE_SOURCE_PERMISSIONS)
install(FILES README.md LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)

# cpack -G DEB (tests/package/run.sh): Depends from the binary's shared libraries (dpkg-shlibdeps).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tessera)
set(CPACK_PACKAGE_VENDOR "Tessera")
set(CPACK_PACKAGE_CONTACT "Tessera maintainers <tessera@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Tile streaming for very large microscopy images: ingest, stitching, zoom levels, IIIF and OME-Zarr")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "hdf5-filter-plugin-blosc-serial, python3-h5py, python3-hdf5plugin")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_STRIP_FILES ON)
include(CPack)
