# The nginx the router benchmarks measure rampart against: a 90/10 weighted split over
# the two upstream instances with pooled keep-alive connections, as rampart does it.
# Source it; then `nginx_proxy_conf DIR STABLE_PORT CANARY_PORT GLOBAL LISTEN` writes
# DIR/nginx.conf, where GLOBAL holds the process settings (workers, limits) and
# LISTEN the `listen` directives, one per line.
nginx_proxy_conf() {
  local dir=$1 stable=$2 canary=$3 global=$4 listen=$5
  mkdir -p "$dir/tmp"
  local user_line=""
  [ "$(id -u)" = 0 ] && user_line="user root;"
  cat > "$dir/nginx.conf" <<CONF
$user_line
$global
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  upstream app {
    server 127.0.0.1:$stable weight=9;
    server 127.0.0.1:$canary weight=1;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    $listen
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF
}
