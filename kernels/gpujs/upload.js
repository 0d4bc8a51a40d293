// upload: out[i] = data[i]   (host data into a texture: the one way values reach the GPU)
function upload(data) {
  return data[this.thread.x];
}
