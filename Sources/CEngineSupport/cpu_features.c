#include "CEngineSupport.h"
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static unsigned long long pd_xgetbv(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
pd_cpu_features pd_detect_cpu_features(void) {
    pd_cpu_features f = {0};
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    int osxsave = (c >> 27) & 1;
    f.fma = (c >> 12) & 1;
    if (osxsave) {
        unsigned long long xcr0 = pd_xgetbv();
        f.os_avx = (xcr0 & 0x6) == 0x6;
        f.os_avx512 = (xcr0 & 0xe6) == 0xe6;
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = (b >> 5) & 1;
        f.avx512f = (b >> 16) & 1;
        f.avx512bw = (b >> 30) & 1;
        f.avx512vl = (b >> 31) & 1;
    }
    return f;
}
#else
pd_cpu_features pd_detect_cpu_features(void) { pd_cpu_features f = {0}; return f; }
#endif
