# Stand-in OMS CE image (see tests/src/bin/oms-standin.rs): FROM scratch, a shell from
# busybox-static and bash-static, /root/docker_init.sh as the vendor's.
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY bash /bin/bash
ARG VERSION
ENV STANDIN_VERSION=${VERSION} PATH=/bin:/usr/bin
CMD ["/opt/oms/oms-standin", "serve"]
