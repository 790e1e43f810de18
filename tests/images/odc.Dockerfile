# Stand-in ODC server and ODC nginx images (see tests/src/bin/odc-standin.rs): FROM scratch, the
# stand-in binary with its shared libraries and a busybox shell. MODE is "serve" (odc-server) or
# "nginx"; VERSION is the product version the stand-in plays.
FROM scratch
COPY odc-rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ARG VERSION
ARG MODE=serve
ENV STANDIN_VERSION=${VERSION} STANDIN_MODE=${MODE} PATH=/bin:/usr/bin
CMD ["/opt/odc/odc-standin"]
